"""`cloudbench runner`: the process that runs on every benchmark machine."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from cloudbench.protocol import problems
from cloudbench.runner.imds import MetadataUnavailable, read_identity

runner_app = typer.Typer(
    help="Claim tasks from the orchestrator and run ruby-bench for them.",
    add_completion=False,
)


def _opt(env: str, help_text: str) -> Any:
    return typer.Option(envvar=f"CLOUDBENCH_{env}", help=help_text, show_envvar=True)


# A callback, so `python -m cloudbench.runner` takes options directly; the top-level CLI
# registers the same function as the `cloudbench runner` command.
@runner_app.callback(invoke_without_command=True)
def runner(
    orchestrator_url: Annotated[
        str | None, _opt("ORCHESTRATOR_URL", "Orchestrator base URL.")
    ] = None,
    provider: Annotated[str | None, _opt("PROVIDER", "aws, azure or local.")] = None,
    instance_type: Annotated[str | None, _opt("INSTANCE_TYPE", "This machine's type.")] = None,
    alias: Annotated[str | None, _opt("ALIAS", "Only claim tasks of this alias.")] = None,
    run_id: Annotated[int | None, _opt("RUN_ID", "Only claim tasks of this run.")] = None,
    slots: Annotated[str | None, _opt("SLOTS", "N, auto (one per CPU) or physical.")] = None,
    executor: Annotated[str | None, _opt("EXECUTOR", "docker, host or auto.")] = None,
    ruby_bench: Annotated[
        str | None, _opt("RUBY_BENCH", "ruby-bench git URL[@ref] or local directory.")
    ] = None,
    work_dir: Annotated[Path | None, _opt("WORK_DIR", "Where tasks and caches live.")] = None,
    task_timeout: Annotated[float | None, _opt("TASK_TIMEOUT", "Seconds per task.")] = None,
    debug: Annotated[
        bool | None, _opt("DEBUG", "Keep failed tasks' files and containers; never shut down.")
    ] = None,
    shutdown_on_done: Annotated[
        bool | None, _opt("SHUTDOWN_ON_DONE", "Power the machine off when all slots end.")
    ] = None,
) -> None:
    """Run tasks until the orchestrator has none left. Token: CLOUDBENCH_RUNNER_TOKEN."""
    # Only what was given (flag or env var) overrides the settings' own defaults/env.
    overrides = {k: v for k, v in locals().items() if v is not None}
    from cloudbench.runner.loop import Runner  # imported late: `cloudbench --help` stays fast
    from cloudbench.runner.settings import RunnerSettings

    _setup_logging(bool(overrides.get("debug") or os.environ.get("CLOUDBENCH_DEBUG")))
    try:
        settings = RunnerSettings(**overrides)
    except ValidationError as exc:
        typer.echo(f"invalid runner settings:\n{_explain(exc)}", err=True)
        raise typer.Exit(2) from None
    try:
        settings.instance_type = resolve_instance_type(settings.provider, settings.instance_type)
    except MetadataUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    runner_obj = Runner(settings)
    runner_obj.install_signal_handlers()
    raise typer.Exit(runner_obj.run())


def resolve_instance_type(provider: str, given: str | None) -> str:
    if given:
        return given
    if provider == "aws":
        return read_identity().instance_type
    if provider == "local":
        return "local"
    raise MetadataUnavailable(f"--instance-type is required for provider {provider}")


def _explain(exc: ValidationError) -> str:
    lines = []
    for problem in problems(exc.errors()):
        field = problem.field()
        if field == "runner_token":
            field = "CLOUDBENCH_RUNNER_TOKEN (environment only)"
        lines.append(f"  {field}: {problem.message}")
    return "\n".join(lines)


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == "__main__":
    runner_app()

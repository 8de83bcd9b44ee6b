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
from cloudbench.runner.executors.base import StartupError
from cloudbench.runner.imds import MetadataUnavailable, read_identity

log = logging.getLogger(__name__)
EXIT_STARTUP = 3  # cannot start work here (ruby-bench, Ruby, container engine)

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
    slots: Annotated[
        str | None,
        _opt(
            "SLOTS",
            "physical (default; one per core), logical (one per vCPU), or N "
            "(N slots of whole cores); auto = physical.",
        ),
    ] = None,
    housekeeping_cpus: Annotated[
        str | None,
        _opt(
            "HOUSEKEEPING_CPUS",
            "CPUs for the runner itself: auto (last core when there are several), none, or a list.",
        ),
    ] = None,
    pass_env: Annotated[
        str | None,
        _opt("PASS_ENV", "Runner variables (NAME,...) handed to the benchmarks on purpose."),
    ] = None,
    ruby_image_digest: Annotated[
        str | None, _opt("RUBY_IMAGE_DIGEST", "sha256:... of the ruby:<version> image.")
    ] = None,
    ruby_image: Annotated[
        str | None,
        _opt("RUBY_IMAGE", "Repository of the Ruby images (default ruby): <it>:<version>."),
    ] = None,
    executor: Annotated[str | None, _opt("EXECUTOR", "docker, host or auto.")] = None,
    image_archive: Annotated[
        Path | None,
        _opt("IMAGE_ARCHIVE", "benchmark-<sha256>.tar to load instead of building (checked)."),
    ] = None,
    save_images: Annotated[
        Path | None, _opt("SAVE_IMAGES", "Folder to save each benchmark image used into.")
    ] = None,
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
        instance = resolve_instance(settings.provider, settings.instance_type)
    except MetadataUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    settings.instance_type = str(instance["instance_type"])
    try:
        runner_obj = Runner(settings, instance)
    except ValueError as exc:  # slots / housekeeping CPUs that do not fit this machine
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    runner_obj.install_signal_handlers()
    try:
        code = runner_obj.run()
    except StartupError as exc:  # expected: one line naming cause and fix, no traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_STARTUP) from None
    raise typer.Exit(code)


def resolve_instance(provider: str, given: str | None) -> dict[str, str | None]:
    """Instance provenance for metadata.json; the cloud's own answer where there is one.

    `instance_type` is what this runner claims tasks for; `instance_type_reported` is what
    the metadata service says (None where there is none).
    """
    facts: dict[str, str | None] = {"provider": provider, "instance_type_reported": None}
    if provider == "aws":
        try:
            identity = read_identity().facts()
        except MetadataUnavailable:
            if not given:
                raise
            log.warning("EC2 metadata service unavailable: instance provenance not recorded")
            identity = {}
        facts.update(identity)
        facts["instance_type_reported"] = identity.get("instance_type")
        facts["instance_type"] = given or identity.get("instance_type")
        return facts
    facts["instance_type"] = resolve_instance_type(provider, given)
    return facts


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

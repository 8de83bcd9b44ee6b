"""`cloudbench run CONFIG` and `cloudbench status RUN_ID`."""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from cloudbench.master.capacity import CapacityError, aws_wanted, plan_capacity
from cloudbench.master.config import (
    ConfigError,
    MasterOptions,
    MasterSettings,
    RunOptions,
    RunPlan,
    build_plan,
)
from cloudbench.master.costplan import BudgetExceeded, CostPlan, check_budget, estimate_cost
from cloudbench.master.metacost import meta_cost
from cloudbench.master.providers import ProviderError, azure
from cloudbench.master.providers.base import RunnerOptions
from cloudbench.master.resume import ResumeError, load_record
from cloudbench.master.run import Master, Terminated
from cloudbench.master.stacks import MetaDeployment
from cloudbench.platform.azure import load_settings as azure_settings
from cloudbench.platform.prices import PriceResolver, PricesFileError
from cloudbench.platform.stacks import load_settings
from cloudbench.platform.state import cloudbench_home, default_state_dir, find_session

ProviderOpt = Annotated[
    list[str] | None, typer.Option("--provider", help="Run only this provider (repeatable).")
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        help="Use this orchestrator (token: CLOUDBENCH_ADMIN_TOKEN) instead of one embedded here."
    ),
]
ResultsOpt = Annotated[Path, typer.Option(help="Where results/<run-id>/ goes.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Never prompt.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One machine-readable summary line.")]


def run(
    config: Annotated[Path, typer.Argument(help="Run config (JSON), e.g. config/local.json.")],
    provider: ProviderOpt = None,
    orchestrator_url: UrlOpt = None,
    results_dir: ResultsOpt = Path("results"),
    ruby_bench: Annotated[
        str | None, typer.Option(help="ruby-bench git URL[@ref] or local checkout.")
    ] = None,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
    state_dir: Annotated[
        Path | None, typer.Option(help="Embedded orchestrator's DB, storage and logs.")
    ] = None,
    heartbeat_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds of silence before a task fails (embedded).")
    ] = 120.0,
    executor: Annotated[str, typer.Option(help="Local runners: host, docker or auto.")] = "auto",
    slots: Annotated[
        str | None,
        typer.Option(help="Local runners: slots each (physical, logical or N; auto = physical)."),
    ] = None,
    reuse_orchestrator: Annotated[
        bool,
        typer.Option(help="AWS: use the deployed orchestrator as it is (no terraform apply)."),
    ] = False,
    logs_dir: Annotated[
        Path, typer.Option(help="Where Terraform logs go: logs/<run-id>/<stack>.log.")
    ] = Path("logs"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and print the cost plan; touch nothing.")
    ] = False,
    prices: Annotated[
        Path | None,
        typer.Option(help="Prices file (CSV/JSON): cost plan, budget and the report at the end."),
    ] = None,
    offline_prices: Annotated[
        bool, typer.Option(help="Only --prices and the config's prices; no price APIs.")
    ] = False,
    boot_timeout: Annotated[
        float,
        typer.Option(
            min=10,
            help="Cloud: seconds a VM may take to call in and boot before it counts "
            "as failed (default 15 min).",
        ),
    ] = 900.0,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="A runner whose task failed stays up (cloud VMs until their hard "
            "lifetime; their stack is kept) and the master prints how to reach it.",
        ),
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option(
            metavar="RUN_ID|latest",
            help="Re-attach to an unfinished run started here with the same CONFIG: restart "
            "its orchestrator if gone, start runners where work is left.",
        ),
    ] = None,
) -> None:
    """Run the benchmarks of CONFIG and collect every result under results/<run-id>/."""
    console, err = _consoles()
    record = None
    if resume is not None:
        try:
            record = load_record(resume)
        except ResumeError as exc:
            err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        # The run's own state (database, storage) and orchestrator; no meta re-apply.
        state_dir, reuse_orchestrator = Path(record.state_dir), record.meta
        orchestrator_url = orchestrator_url or record.orchestrator_url
    report_args = ["--config", str(config)] + (["--prices", str(prices)] if prices else [])
    options = RunOptions(
        providers=provider or (),
        orchestrator_url=orchestrator_url,
        reuse_orchestrator=reuse_orchestrator,
        state_dir=state_dir or default_state_dir(),
        logs_dir=logs_dir,
        runner=RunnerOptions(
            executor=executor,
            slots=slots,
            ruby_bench=ruby_bench,
            heartbeat_interval=min(30.0, heartbeat_timeout / 4),
            debug=debug,
            boot_timeout=boot_timeout,
        ),
        master=MasterOptions(results_dir, yes, json_out, heartbeat_timeout, report_args),
    )
    try:
        plan = build_plan(config, options)
        if dry_run or plan.spec.budget is not None or plan.clouds:
            cost = _cost_plan(plan, prices, offline_prices, options.state_dir)
            if dry_run:
                lines = cost.describe() + _capacity_lines(plan)
                lines += azure.dry_run_lines(plan.spec) if plan.spec.azure else []
                for line in lines:
                    console.print(line, markup=False, highlight=False, soft_wrap=True)
                raise typer.Exit(1 if any(ln.startswith("refused:") for ln in lines) else 0)
            check_budget(plan.spec, cost)  # before any terraform call
            plan = dataclasses.replace(plan, cost=cost)
    except (ConfigError, ProviderError, BudgetExceeded, PricesFileError) as exc:
        err.print(
            str(exc) if isinstance(exc, ConfigError) else f"error: {exc}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    _signals_interrupt()
    raise typer.Exit(Master(console, err, plan.master).run(plan, record))


def _cost_plan(plan: RunPlan, prices: Path | None, offline: bool, state_dir: Path) -> CostPlan:
    spec = plan.spec
    resolver = PriceResolver(prices, spec.prices, offline)
    aws_region = plan.aws.region if plan.aws is not None else load_settings().region
    regions: dict[str, str | None] = {
        "aws": aws_region,
        "azure": azure_settings().location or None,
    }
    # The meta deployment bills while the run runs (and after, until nuked). Its two
    # instances: --prices or the config's prices, else the README's list prices (no API).
    offline_resolver = PriceResolver(prices, spec.prices, offline=True)
    meta = meta_cost(offline_resolver, aws_region) if plan.aws is not None else None
    return estimate_cost(spec, resolver, regions, state_dir, meta, cloudbench_home())


def _capacity_lines(plan: RunPlan) -> list[str]:
    """--dry-run: the zone each AWS type goes to and the vCPU quota checks."""
    if plan.aws is None or not plan.spec.aws:
        return []
    pending = not plan.reuse and not MetaDeployment(plan.aws, plan.logs_dir, plan.reuse).deployed()
    try:
        found = plan_capacity(aws_wanted(plan.spec), plan.aws.region, meta_pending=pending)
    except CapacityError as exc:
        return [f"refused: aws {exc}"]
    return found.describe()


def status(
    run_id: Annotated[int, typer.Argument(help="The run to follow.")],
    orchestrator_url: UrlOpt = None,
    results_dir: ResultsOpt = Path("results"),
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-attach to a run: live progress, then download its results when it ends."""
    console, err = _consoles()
    session = find_session(run_id)
    url = orchestrator_url or (session.orchestrator_url if session else None)
    admin = MasterSettings().admin_token
    token = admin.get_secret_value() if admin else ""
    if not orchestrator_url and session is not None and session.embedded:
        token = _session_token(Path(session.state_dir))
    if not url or not token:
        err.print(
            f"error: run {run_id}: no local session found; pass --orchestrator-url "
            "and set CLOUDBENCH_ADMIN_TOKEN",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    # Clean up after a master that died; a living one tears down its own processes.
    adopted = session if session is not None and not session.master_alive() else None
    master = Master(console, err, MasterOptions(results_dir, yes, json_out))
    _signals_interrupt()
    # The pinned certificate of the deployment the session's master connected to.
    cert = session.orchestrator_cert if session and not orchestrator_url else None
    raise typer.Exit(master.status(run_id, url, token, adopted, cert))


def _session_token(state_dir: Path) -> str:
    import json

    try:
        return str(json.loads((state_dir / "tokens.json").read_text())["admin_token"])
    except (OSError, ValueError, KeyError):
        return ""


def _consoles() -> tuple[Console, Console]:
    console, err = Console(), Console(stderr=True)
    for noisy in ("httpx", "httpcore", "docker", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if console.is_terminal:
        # Log records above the live view instead of tearing through it.
        root = logging.getLogger()
        root.handlers[:] = [RichHandler(console=console, show_path=False)]
    return console, err


def _signals_interrupt() -> None:
    """SIGTERM behaves like Ctrl-C answered with yes: stop, collect, tear down."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise Terminated

    if sys.platform != "win32":
        signal.signal(signal.SIGTERM, handler)

"""`cloudbench nuke`: list what cloudbench left running or allocated, ask, remove it.

Each provider has a planner and an executor; local is built in, AWS and Azure are imported
lazily from ``cloudbench.nuke.aws`` / ``cloudbench.nuke.azure`` (their SDKs and
credentials are only needed when asked for). Without ``--provider`` every provider the
state directory knows is done: local always, a cloud when stacks of it are recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Protocol

import typer
from rich.console import Console
from rich.prompt import Confirm

if TYPE_CHECKING:
    from cloudbench.nuke.aws import NukePlan
    from cloudbench.platform.stacks import Stack

KNOWN = ("local", "aws", "azure")
# Provider stacks recorded under runs/<id>/<name>; every other one (meta, aws) is AWS's.
AZURE_STACKS = frozenset({"azure"})


class _Step(Protocol):
    def plan(self) -> list[str]: ...

    def execute(self) -> list[str]: ...


class _Local:
    def __init__(self, run_id: int | None) -> None:
        from cloudbench.nuke.local import plan_local

        self._plan = plan_local(run_id)

    def plan(self) -> list[str]:
        return self._plan.describe()

    def execute(self) -> list[str]:
        from cloudbench.nuke.local import execute_local

        return execute_local(self._plan).describe()


class _Aws:
    """Terraform destroy of the stacks on disk (provider stacks, then meta), then the sweep."""

    def __init__(self, run_id: int | None, region: str | None) -> None:
        from cloudbench.nuke import aws
        from cloudbench.platform import stacks

        self._aws, self._tf = aws, stacks
        self._settings = stacks.load_settings()
        self._stacks = [
            s for s in stacks.recorded_stacks(self._settings, run_id) if s.name not in AZURE_STACKS
        ]
        self._run_id = None if run_id is None else str(run_id)
        # The region the run used: the one recorded with its stacks, else the one a run
        # would use now (CLOUDBENCH_AWS_REGION). AWS_DEFAULT_REGION, another tool's
        # setting, once won here and swept a region the run never touched.
        recorded = sorted(
            {str(s.variables["region"]) for s in self._stacks if s.variables.get("region")}
        )
        self._region = region or (recorded[0] if recorded else self._settings.region)
        self._notes = [
            f"(stacks also recorded in {other}: cloudbench nuke --provider aws --region {other})"
            for other in recorded
            if other != self._region
        ]
        self._plan = self._sweep_plan()

    def _sweep_plan(self) -> NukePlan:
        try:
            return self._aws.plan_nuke(region=self._region, run_id=self._run_id)
        except ValueError as exc:  # no region/credentials: Terraform can still destroy
            return self._aws.NukePlan(self._region, self._run_id, errors=[str(exc)])

    @staticmethod
    def _lines(plan: object) -> list[str]:
        resources = getattr(plan, "resources", [])
        return [f"{r.kind} {r.id} {r.name}".rstrip() for r in resources]

    def plan(self) -> list[str]:
        stacks = [f"terraform stack {s.workdir}" for s in self._stacks]
        errors = [f"(could not list: {e})" for e in self._plan.errors]
        found = stacks + self._lines(self._plan) + errors
        return [*found, f"(AWS region {self._region})", *self._notes] if found else []

    def execute(self) -> list[str]:
        failed = self._tf.destroy_recorded(self._settings, self._stacks)
        # Terraform removed most of it: list again so the sweep sees only what is left.
        plan = self._sweep_plan()
        if plan.errors and not plan.resources:
            return failed + [f"(could not list: {e})" for e in plan.errors]
        result = self._aws.execute_nuke(plan)
        return failed + self._lines(result.remaining)


class _Azure:
    """Terraform destroy of the run stacks on disk, then the resource-group sweep by tag.

    Without credentials nothing can be listed, so nothing can be shown to be gone: that
    is one line and a non-zero exit, never "nothing to remove".
    """

    def __init__(self, run_id: int | None) -> None:
        from cloudbench.nuke import azure
        from cloudbench.platform import stacks

        self._azure, self._tf = azure, stacks
        self._settings = stacks.load_settings()
        self._stacks: list[Stack] = [
            s for s in stacks.recorded_stacks(self._settings, run_id) if s.name in AZURE_STACKS
        ]
        self._run_id = None if run_id is None else str(run_id)
        self.unavailable: str | None = None
        self._client = None
        try:
            self._client = azure.make_client(azure.load_settings())
            self._plan = azure.plan_sweep(self._client, self._run_id)
        except azure.AzureUnavailable as exc:
            self.unavailable = str(exc)
            self._plan = azure.SweepPlan(self._run_id)

    def plan(self) -> list[str]:
        stacks = [f"terraform stack {s.workdir}" for s in self._stacks]
        return stacks + self._plan.describe()

    def execute(self) -> list[str]:
        failed = self._tf.destroy_recorded(self._settings, self._stacks)
        if self._client is None:
            return failed
        try:
            # Terraform removed most of it: list again so the sweep sees only what is left.
            plan = self._azure.plan_sweep(self._client, self._run_id)
            result = self._azure.execute_sweep(
                self._client, plan, timeout=self._azure.load_settings().delete_timeout
            )
        except self._azure.AzureUnavailable as exc:
            return [*failed, str(exc)]
        return failed + result.describe()


def _known_providers() -> list[str]:
    """local, plus every cloud with Terraform stacks recorded in the state directory."""
    from cloudbench.platform import stacks

    names = {s.name for s in stacks.recorded_stacks(stacks.load_settings(), None)}
    clouds = (["aws"] if names - AZURE_STACKS else []) + (["azure"] if names & AZURE_STACKS else [])
    return ["local", *clouds]


def _step(name: str, run_id: int | None, region: str | None) -> _Step:
    if name == "local":
        return _Local(run_id)
    if name == "azure":
        return _Azure(run_id)
    return _Aws(run_id, region)


def nuke(
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            help="local, aws or azure; repeatable. Default: every provider the state knows.",
        ),
    ] = None,
    run_id: Annotated[int | None, typer.Option(help="Only what belongs to this run.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    region: Annotated[str | None, typer.Option(help="AWS region (aws only).")] = None,
) -> None:
    """Stop and remove everything cloudbench started (processes, containers, cloud)."""
    console = Console()
    chosen = provider or _known_providers()
    unknown = [p for p in chosen if p not in KNOWN]
    if unknown:
        console.print(f"error: unknown provider {unknown[0]}; expected {', '.join(KNOWN)}")
        raise typer.Exit(1)
    steps: dict[str, _Step] = {}
    for name in chosen:
        steps[name] = _step(name, run_id, region)
    unavailable = [f"{name}: {blind}" for name, step in steps.items() if (blind := _blind(step))]
    planned = {name: step.plan() for name, step in steps.items()}
    for name, lines in planned.items():
        blind = _blind(steps[name])
        empty = "cannot list (see below)" if blind else "nothing to remove"
        console.print(f"[bold]{name}[/]: " + (empty if not lines else ""))
        for line in lines:
            console.print(f"  {line}", markup=False, highlight=False)
    if not any(planned.values()):
        _unavailable_exit(console, unavailable)
        return
    if not yes and not (console.is_terminal and Confirm.ask("Remove all of this?")):
        console.print("nothing removed" + ("" if console.is_terminal else " (use --yes)"))
        raise typer.Exit(1)
    left = {name: steps[name].execute() for name, lines in planned.items() if lines}
    for name, lines in left.items():
        console.print(f"[bold]{name}[/]: left: " + (", ".join(lines) if lines else "nothing"))
    _unavailable_exit(console, unavailable)
    raise typer.Exit(1 if any(left.values()) else 0)


def _blind(step: _Step) -> str | None:
    """Why a step cannot list anything at all (Azure without credentials), if it cannot."""
    return step.unavailable if isinstance(step, _Azure) else None


def _unavailable_exit(console: Console, unavailable: list[str]) -> None:
    """A cloud that could not be asked cannot be called clean."""
    for line in unavailable:
        console.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
    if unavailable:
        raise typer.Exit(1)

"""`cloudbench nuke`: list what cloudbench left running or allocated, ask, remove it.

Each provider has a planner and an executor; local is built in, AWS is imported lazily
from ``cloudbench.nuke.aws`` (boto3 and credentials are only needed when asked for).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Protocol

import typer
from rich.console import Console
from rich.prompt import Confirm

if TYPE_CHECKING:
    from cloudbench.nuke.aws import NukePlan

KNOWN = ("local", "aws")


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
        self._stacks = stacks.recorded_stacks(self._settings, run_id)
        self._run_id = None if run_id is None else str(run_id)
        self._region = region or os.environ.get("AWS_DEFAULT_REGION") or self._settings.region
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
        return stacks + self._lines(self._plan) + errors

    def execute(self) -> list[str]:
        failed = self._tf.destroy_recorded(self._settings, self._stacks)
        # Terraform removed most of it: list again so the sweep sees only what is left.
        plan = self._sweep_plan()
        if plan.errors and not plan.resources:
            return failed + [f"(could not list: {e})" for e in plan.errors]
        result = self._aws.execute_nuke(plan)
        return failed + self._lines(result.remaining)


def nuke(
    provider: Annotated[
        list[str] | None, typer.Option("--provider", help="local (default) or aws; repeatable.")
    ] = None,
    run_id: Annotated[int | None, typer.Option(help="Only what belongs to this run.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    region: Annotated[str | None, typer.Option(help="AWS region (aws only).")] = None,
) -> None:
    """Stop and remove everything cloudbench started (processes, containers, cloud)."""
    console = Console()
    chosen = provider or ["local"]
    unknown = [p for p in chosen if p not in KNOWN]
    if unknown:
        console.print(f"error: unknown provider {unknown[0]}; expected {', '.join(KNOWN)}")
        raise typer.Exit(1)
    steps: dict[str, _Step] = {}
    for name in chosen:
        steps[name] = _Local(run_id) if name == "local" else _Aws(run_id, region)
    planned = {name: step.plan() for name, step in steps.items()}
    for name, lines in planned.items():
        console.print(f"[bold]{name}[/]: " + ("nothing to remove" if not lines else ""))
        for line in lines:
            console.print(f"  {line}", markup=False, highlight=False)
    if not any(planned.values()):
        return
    if not yes and not (console.is_terminal and Confirm.ask("Remove all of this?")):
        console.print("nothing removed" + ("" if console.is_terminal else " (use --yes)"))
        raise typer.Exit(1)
    left = {name: steps[name].execute() for name, lines in planned.items() if lines}
    for name, lines in left.items():
        console.print(f"[bold]{name}[/]: left: " + (", ".join(lines) if lines else "nothing"))
    raise typer.Exit(1 if any(left.values()) else 0)

"""The cost guard: what a run will launch, for how long, at what price — before it starts.

`cloudbench run --dry-run` prints this plan; a config `budget` is checked against it
before any Terraform runs. Durations come, in order of preference, from task durations
recorded by earlier runs with the same benchmark selection (``task-durations.jsonl`` in
the state directory), from a stated per-benchmark assumption, or — when nothing supports
an estimate (no benchmark names: the whole suite) — from each VM living its hard maximum
lifetime, the conservative bound. Slots per VM are assumed to be 1 (runners may run more,
which only shortens the run). Each VM's set-up (boot to first benchmark) is the median
measured for its type by earlier runs (``boot-times.jsonl`` in CLOUDBENCH_HOME,
master/boottimes.py), else an assumed 15 minutes.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudbench.master.boottimes import BOOT_HISTORY, Setup, measured_setup
from cloudbench.master.ledger import CostMeter
from cloudbench.master.metacost import MetaCost
from cloudbench.platform.prices import PriceResolver
from cloudbench.protocol import RunSpec, TaskOut

logger = logging.getLogger(__name__)

HISTORY = "task-durations.jsonl"
ASSUMED_SECONDS = 60.0  # per benchmark and executable, when no earlier run says otherwise
SETUP_HOURS = 0.25  # boot, packages, the ruby image, before the first task
DEFAULT_LIFETIME_MINUTES = 720  # the stacks' max_lifetime_minutes default
CLOUDS = ("aws", "azure")


class BudgetExceeded(RuntimeError):
    """The estimate does not fit the config's budget; the message names both and the fix."""


@dataclass(frozen=True)
class Line:
    provider: str
    instance_type: str
    alias: str
    vms: int
    slots: int
    tasks: int
    hours_per_vm: float
    usd_per_hour: float | None  # per VM; None: no price
    price_source: str
    needed_hours: float  # the estimate before the hard lifetime cuts it
    # Every task runs every Ruby (paired on the machine): tasks per type x Ruby = tasks.
    rubies: tuple[str, ...] = ()
    setup_hours: float = SETUP_HOURS
    setup_vms: int = 0  # VMs of earlier runs that measured setup_hours; 0: assumed
    price_date: str | None = None
    capacity: str = "on-demand"  # spot: priced at the on-demand price, its default cap

    @property
    def instance_hours(self) -> float:
        return self.vms * self.hours_per_vm

    @property
    def cost(self) -> float | None:
        return None if self.usd_per_hour is None else self.instance_hours * self.usd_per_hour


@dataclass(frozen=True)
class CostPlan:
    lines: list[Line]
    basis: str  # where the durations come from, in words
    lifetime_minutes: int
    meta: MetaCost | None = None  # the AWS meta deployment, billed while the run runs

    @property
    def meta_per_hour(self) -> float:
        return self.meta.usd_per_hour if self.meta is not None else 0.0

    @property
    def wall_hours(self) -> float:
        return max((ln.needed_hours for ln in self.lines), default=0.0)

    @property
    def unpriced(self) -> list[Line]:
        return [ln for ln in self.lines if ln.provider in CLOUDS and ln.usd_per_hour is None]

    def per_hour(self) -> float:
        return self.meta_per_hour + sum(ln.vms * (ln.usd_per_hour or 0.0) for ln in self.lines)

    def total(self) -> float:
        return self.meta_per_hour * self.wall_hours + sum(ln.cost or 0.0 for ln in self.lines)

    def describe(self) -> list[str]:
        rows = [
            f"{'stack':6} {'type':22} {'alias':16} {'VMs':>3} {'slots':>5} {'tasks':>5} "
            f"{'inst-h':>7} {'USD/h':>8} {'USD':>9}"
        ]
        for ln in self.lines:
            price = "no price" if ln.usd_per_hour is None else f"{ln.usd_per_hour * ln.vms:.4f}"
            cost = "no price" if ln.cost is None else f"{ln.cost:.2f}"
            if ln.provider == "local":
                price = cost = "-"
            rows.append(
                f"{ln.provider:6} {ln.instance_type:22} {ln.alias:16} {ln.vms:>3} {ln.slots:>5} "
                f"{ln.tasks:>5} {ln.instance_hours:>7.2f} {price:>8} {cost:>9}"
            )
            rows += _ruby_rows(ln)
            if ln.capacity == "spot":
                rows.append(
                    f"{'':6}   spot: priced at most at this (on-demand) price; the "
                    "ledger uses the zone's spot price once launched"
                )
        known = "" if not self.unpriced else f" + {len(self.unpriced)} type(s) with no price"
        if self.meta is not None:
            rows.append(self.meta.row(self.wall_hours))
            known += " (meta stack included)"
        rows += [
            f"stacks: {', '.join(sorted({ln.provider for ln in self.lines}))}",
            f"durations: {self.basis}",
            f"estimated wall time {self.wall_hours:.2f} h; VM hard lifetime "
            f"{self.lifetime_minutes} min",
            f"estimated cost: {self.per_hour():.4f} USD/h, {self.total():.2f} USD for the run"
            + known,
        ]
        return rows


def _ruby_rows(ln: Line) -> list[str]:
    """Per Ruby of a type: its tasks (every task runs every Ruby, paired) and its share of
    the benchmark time (the setup is shared) in instance-hours and USD."""
    if len(ln.rubies) < 2:
        return []
    hours = ln.vms * max(0.0, ln.hours_per_vm - ln.setup_hours) / len(ln.rubies)
    usd = "-" if ln.provider == "local" else "no price"
    if ln.usd_per_hour is not None and ln.provider != "local":
        usd = f"{hours * ln.usd_per_hour:.2f} USD"
    return [
        f"{'':6}   Ruby {r}: {ln.tasks} task(s), {hours:.2f} inst-h, {usd}" for r in ln.rubies
    ] + [f"{'':6}   (each task runs every Ruby; the setup time is shared)"]


def lifetime_minutes(spec: RunSpec) -> int:
    """Each VM's hard lifetime: max_hours when the budget sets one, else the stacks' default."""
    if spec.budget is None or spec.budget.max_hours is None:
        return DEFAULT_LIFETIME_MINUTES
    return max(10, min(2880, math.ceil(spec.budget.max_hours * 60)))


def selection_key(spec: RunSpec) -> str:
    selection: dict[str, Any] = spec.benchmarks.model_dump()
    if len(spec.rubies) > 1:  # a task runs every Ruby: longer than a one-Ruby task
        selection["rubies"] = len(spec.rubies)
    return json.dumps(selection, sort_keys=True)


def estimate_cost(
    spec: RunSpec,
    resolver: PriceResolver,
    regions: dict[str, str | None],
    state_dir: Path,
    meta: MetaCost | None = None,
    home: Path | None = None,
) -> CostPlan:
    """`home`: where boot-times.jsonl lives (CLOUDBENCH_HOME); None: set-up assumed."""
    lifetime = lifetime_minutes(spec)
    per_task, basis = _task_seconds(spec, state_dir)
    setups = measured_setup(home) if home is not None else {}
    lines = []
    for provider, item in spec.instance_types():
        per = spec.counts(item)
        seconds = per_task.get((provider, item.instance_type)) if per_task else None
        if seconds is None and per_task is not None:
            seconds = per_task.get(("*", "*"))
        setup = setups.get((provider, item.instance_type), Setup(SETUP_HOURS * 3600, 0))
        if seconds is None:
            needed = lifetime / 60  # nothing supports an estimate: the conservative bound
        else:
            per_vm = math.ceil(per.tasks / per.instances)  # one slot each, conservatively
            needed = setup.seconds / 3600 + per_vm * seconds / 3600
        hours = min(lifetime / 60, needed)
        price = None
        if provider in CLOUDS:
            price = resolver.resolve(provider, item.instance_type, regions.get(provider))
        lines.append(
            Line(
                provider,
                item.instance_type,
                item.effective_alias,
                per.instances,
                1,
                per.tasks,
                hours,
                None if price is None else price.usd_per_hour,
                "" if price is None else price.source,
                needed,
                tuple(spec.rubies),
                setup.seconds / 3600,
                setup.vms,
                None if price is None else price.date,
                spec.capacity_of(provider, item),
            )
        )
    if per_task is not None:
        basis += _setup_basis(lines, home)
    return CostPlan(lines, basis, lifetime, meta)


def _setup_basis(lines: list[Line], home: Path | None) -> str:
    measured = [ln for ln in lines if ln.setup_vms]
    if not measured:
        return f"; set-up assumed {SETUP_HOURS * 60:.0f} min per VM (no boot measured yet)"
    where = home / BOOT_HISTORY if home is not None else BOOT_HISTORY
    parts = ", ".join(
        f"{ln.alias} {ln.setup_hours * 60:.1f} min ({ln.setup_vms} VMs)" for ln in measured
    )
    rest = "" if len(measured) == len(lines) else f", others {SETUP_HOURS * 60:.0f} min assumed"
    return f"; set-up per VM measured by earlier runs ({where}): {parts}{rest}"


def _task_seconds(
    spec: RunSpec, state_dir: Path
) -> tuple[dict[tuple[str, str], float] | None, str]:
    """Seconds per task by (provider, type), or ("*","*") for all; None: no estimate."""
    recorded = _history(state_dir, selection_key(spec))
    if recorded:
        found = {k: statistics.median(v) for k, v in recorded.items()}
        # A type never measured with this selection: the slowest one that was.
        found[("*", "*")] = max(found.values())
        runs = sum(len(v) for v in recorded.values())
        return found, f"recorded durations of {runs} earlier task(s) with this selection"
    names = len(spec.benchmarks.names)
    if not names:
        return None, "no estimate for the whole suite: every VM lives its hard lifetime"
    rubies = len(spec.rubies)
    seconds = ASSUMED_SECONDS * names * len(spec.benchmarks.executables) * rubies
    return {("*", "*"): seconds}, (
        f"assumed {ASSUMED_SECONDS:.0f} s per benchmark and executable"
        f"{f' on each of {rubies} Rubies' if rubies > 1 else ''} "
        f"({seconds:.0f} s per task); no earlier runs recorded"
    )


def _history(state_dir: Path, key: str) -> dict[tuple[str, str], list[float]]:
    found: dict[tuple[str, str], list[float]] = {}
    try:
        lines = (state_dir / HISTORY).read_text(encoding="utf-8").splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            row: dict[str, Any] = json.loads(line)
            if row["selection"] != key:
                continue
            found.setdefault((row["provider"], row["instance_type"]), []).append(
                float(row["seconds"])
            )
        except (ValueError, KeyError, TypeError):
            continue  # a torn or foreign line costs one sample, nothing else
    return found


def record_durations(state_dir: Path, spec: RunSpec, tasks: list[TaskOut]) -> int:
    """Append the completed tasks' durations for later estimates; returns how many."""
    key = selection_key(spec)
    rows = [
        json.dumps(
            {
                "selection": key,
                "provider": t.provider,
                "instance_type": t.instance_type,
                "seconds": (t.finished_at - t.started_at).total_seconds(),
            }
        )
        for t in tasks
        if t.status == "completed" and t.started_at and t.finished_at
    ]
    if rows:
        state_dir.mkdir(parents=True, exist_ok=True)
        with (state_dir / HISTORY).open("a", encoding="utf-8") as out:
            out.write("\n".join(rows) + "\n")
    return len(rows)


def check_budget(spec: RunSpec, plan: CostPlan) -> None:
    budget = spec.budget
    if budget is None:
        return
    if budget.max_hours is not None and plan.wall_hours > budget.max_hours:
        raise BudgetExceeded(
            f"budget.max_hours: the run is estimated at {plan.wall_hours:.2f} h, over "
            f"{budget.max_hours:g} h; run fewer tasks or raise budget.max_hours"
        )
    if budget.max_usd is None:
        return
    if plan.unpriced:
        names = ", ".join(f"{ln.provider}/{ln.instance_type}" for ln in plan.unpriced)
        raise BudgetExceeded(
            f"budget.max_usd: no price for {names}, so the cost cannot be shown to fit; "
            'add them to the config\'s "prices" (USD per hour) or pass --prices FILE'
        )
    if plan.total() > budget.max_usd:
        raise BudgetExceeded(
            f"budget.max_usd: the run is estimated at {plan.total():.2f} USD, over "
            f"{budget.max_usd:g} USD; run fewer instances/tasks or raise budget.max_usd"
        )


def meter_for(spec: RunSpec, plan: CostPlan) -> CostMeter:
    """The running run's cost watch, with the prices the plan resolved."""
    prices = {(ln.provider, ln.instance_type): ln.usd_per_hour for ln in plan.lines}
    meta = plan.meta.usd_per_hour if plan.meta is not None else None
    meter = CostMeter(spec, prices, spec.budget, meta_usd_per_hour=meta)
    meter.sources = {
        (ln.provider, ln.instance_type): (ln.price_source or None, ln.price_date)
        for ln in plan.lines
    }
    return meter

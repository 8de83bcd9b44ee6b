"""What the dashboard shows: one run with its tasks grouped by instance type.

One query returns the tasks joined to their group's counts (db/runs.py's aggregate, the
same the API's run view reads), so a refresh costs the same few queries for ten tasks or
ten thousand, and no count is computed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from cloudbench.orchestrator.api.views import run_out
from cloudbench.orchestrator.db import machines as db_machines
from cloudbench.orchestrator.db import runs as db_runs
from cloudbench.orchestrator.db.models import Machine, Run, Task
from cloudbench.orchestrator.db.runs import GroupStats
from cloudbench.orchestrator.storage.base import Storage
from cloudbench.protocol import (
    ACTIVE_STATUSES,
    ARCHIVE_SETTLED,
    TERMINAL_STATUSES,
    RunOut,
    RunStatus,
)

# Heartbeats older than this share of the timeout are flagged before the sweeper acts.
WARN_FRACTION = 0.5


@dataclass
class TaskRow:
    task: Task
    progress: float
    heartbeat_age: float | None
    heartbeat_level: str  # "", "warn" or "late"


@dataclass
class Group:
    stats: GroupStats
    rows: list[TaskRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.stats.counts.values())

    @property
    def finished(self) -> int:
        return sum(n for s, n in self.stats.counts.items() if s in TERMINAL_STATUSES)

    @property
    def progress(self) -> float:
        return sum(r.progress for r in self.rows) / len(self.rows) if self.rows else 0.0


@dataclass
class MachineRow:
    """A runner VM: stage, since when, last line (and the last lines of a failure)."""

    machine: Machine
    stage_age: float
    seen_age: float


@dataclass
class RunView:
    run: RunOut
    groups: list[Group]
    progress: float
    elapsed: float
    heartbeat_timeout: float
    machines: list[MachineRow] = field(default_factory=list)

    @property
    def is_final(self) -> bool:
        """Nothing left to change: the page may stop polling."""
        return self.run.status != RunStatus.running and self.run.archive_state in ARCHIVE_SETTLED


def task_progress(task: Task) -> float:
    if task.status in TERMINAL_STATUSES:
        return 100.0
    if task.status in ACTIVE_STATUSES and task.progress_pct is not None:
        return max(0.0, min(100.0, task.progress_pct))
    return 0.0


def heartbeat_level(task: Task, age: float | None, timeout: float) -> str:
    if age is None or task.status not in ACTIVE_STATUSES:
        return ""
    if age >= timeout:
        return "late"
    return "warn" if age >= timeout * WARN_FRACTION else ""


def group_tasks(tasks: list[tuple[Task, GroupStats]], now: datetime, timeout: float) -> list[Group]:
    groups: dict[tuple[str, str, str], Group] = {}
    for task, stats in tasks:
        key = (task.provider, task.instance_type, task.alias)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(stats)
        age = (now - task.heartbeat_at).total_seconds() if task.heartbeat_at else None
        group.rows.append(
            TaskRow(task, task_progress(task), age, heartbeat_level(task, age, timeout))
        )
    for group in groups.values():
        group.rows.sort(key=lambda r: (r.task.run_number, r.task.id))
    return [groups[k] for k in sorted(groups)]


def build_view(
    session: Session, run: Run, storage: Storage | None, heartbeat_timeout: float
) -> RunView:
    # The app clock, not the database's: close enough for "N s ago" and saves a query.
    now = datetime.now(UTC)
    tasks = db_runs.tasks_with_group_stats(session=session, run=run)
    groups = group_tasks(tasks, now, heartbeat_timeout)
    out = run_out(run, [g.stats for g in groups], storage)
    # Removed (never started) tasks count as done so a stopped run reads 100%.
    total = out.tasks.total + out.tasks.removed
    done = sum(r.progress for g in groups for r in g.rows) + 100.0 * out.tasks.removed
    end = out.finished_at or now
    machines = [
        MachineRow(m, (now - m.stage_since).total_seconds(), (now - m.last_seen_at).total_seconds())
        for m in db_machines.list_machines(session=session, run=run)
    ]
    return RunView(
        run=out,
        groups=groups,
        progress=done / total if total else 0.0,
        elapsed=max(0.0, (end - out.created_at).total_seconds()),
        heartbeat_timeout=heartbeat_timeout,
        machines=machines,
    )

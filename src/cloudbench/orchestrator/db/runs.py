"""Runs: creation from the config-file shape, reads with task counts, early stop."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Subquery, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudbench.orchestrator.db import attempts, queue
from cloudbench.orchestrator.db.clock import db_now
from cloudbench.orchestrator.db.models import Run, Task
from cloudbench.orchestrator.errors import Conflict, NotFound
from cloudbench.protocol import (
    ACTIVE_STATUSES,
    ArchiveState,
    AttemptOutcome,
    ErrorType,
    RunSpec,
    RunStatus,
    TaskStatus,
)


def create_run(*, session: Session, spec: RunSpec) -> tuple[Run, bool]:
    """Create the run and its tasks; returns (run, created). Same body + run_id → existing."""
    # A concurrent create can take the id between our check and our insert (the unique
    # index says so): look again, under a savepoint so the transaction survives.
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with session.begin_nested():
                return _create_run_once(session, spec)
        except IntegrityError:
            if attempt == _CREATE_ATTEMPTS - 1:
                raise Conflict("run id contention; retry the request") from None
    raise AssertionError("unreachable")


_CREATE_ATTEMPTS = 20


def _create_run_once(session: Session, spec: RunSpec) -> tuple[Run, bool]:
    normalized = spec.normalized()
    if spec.run_id is not None:
        existing = get_run(session=session, external_id=spec.run_id, missing_ok=True)
        if existing is not None:
            if existing.spec != normalized:
                raise Conflict(f"run_id {spec.run_id} is taken by a run with a different body")
            return existing, False
        external_id = spec.run_id
    else:
        external_id = _next_free_run_id(session, int(time.time()))
    run = Run(
        external_id=external_id,
        ruby_version=",".join(spec.rubies),  # several: the claim hands out the list
        tasks_per_instance_type=spec.per_instance_type.tasks,
        instances_per_instance_type=spec.per_instance_type.instances,
        benchmarks=spec.benchmarks.model_dump(),
        spec=normalized,
        status=RunStatus.running,
        archive_state=ArchiveState.none,
        max_attempts=spec.max_attempts,
    )
    session.add(run)
    session.flush()
    rows = [
        {
            "run_id": run.id,
            "provider": provider,
            "instance_type": it.instance_type,
            "alias": it.effective_alias,
            "run_number": n,
            "status": TaskStatus.pending,
            "lease": 0,
        }
        for provider, it in spec.instance_types()
        for n in range(1, spec.counts(it).tasks + 1)
    ]
    session.execute(insert(Task), rows)
    return run, True


def _next_free_run_id(session: Session, start: int) -> int:
    taken = set(
        session.execute(
            select(Run.external_id).where(Run.external_id >= start, Run.external_id < start + 1000)
        ).scalars()
    )
    candidate = start
    while candidate in taken:
        candidate += 1
    return candidate


def get_run(*, session: Session, external_id: int, missing_ok: bool = False) -> Run | None:
    run = session.execute(select(Run).where(Run.external_id == external_id)).scalar_one_or_none()
    if run is None and not missing_ok:
        raise NotFound(f"run {external_id} not found")
    return run


def require_run(*, session: Session, external_id: int) -> Run:
    run = get_run(session=session, external_id=external_id)
    assert run is not None
    return run


def list_runs(*, session: Session, limit: int = 50) -> list[Run]:
    stmt = select(Run).order_by(Run.external_id.desc()).limit(limit)
    return list(session.execute(stmt).scalars())


def list_tasks(*, session: Session, run: Run) -> list[Task]:
    stmt = select(Task).where(Task.run_id == run.id).order_by(Task.id)
    return list(session.execute(stmt).scalars())


@dataclass
class GroupStats:
    provider: str
    instance_type: str
    alias: str
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    current_benchmarks: list[str] = field(default_factory=list)
    oldest_heartbeat_at: datetime | None = None
    # Sum of the active tasks' progress_pct (the dashboard's progress without every row).
    active_progress: float = 0.0
    running_progress: float = 0.0  # the same in tasks (0.5 = half of one), for RunOut


def _group_aggregate(run_pks: list[int]) -> Subquery:
    """One row per (run, instance type): a count per status, the oldest active heartbeat
    and the active tasks' benchmarks. The API and the dashboard both read groups from
    this subquery; nobody recounts in Python."""
    active = Task.status.in_(ACTIVE_STATUSES)
    per_status = [func.count().filter(Task.status == s).label(s.value) for s in TaskStatus]
    return (
        select(
            *_group_key(Task),
            *per_status,
            func.min(Task.heartbeat_at).filter(active).label("oldest_heartbeat_at"),
            func.sum(Task.progress_pct).filter(active).label("active_progress"),
            func.aggregate_strings(Task.current_benchmark, _SEP).filter(active).label("benches"),
        )
        .where(Task.run_id.in_(run_pks))
        .group_by(*_group_key(Task))
        .subquery("group_stats")
    )


def _group_key(t: Any) -> tuple[Any, ...]:
    return (t.run_id, t.provider, t.instance_type, t.alias)


def _stats(row: Any) -> GroupStats:
    stats = GroupStats(row.provider, row.instance_type, row.alias)
    for status in TaskStatus:
        if n := row._mapping[status.value]:
            stats.counts[status] = n
    stats.oldest_heartbeat_at = row.oldest_heartbeat_at
    stats.active_progress = float(row.active_progress or 0.0)
    stats.running_progress = stats.active_progress / 100
    for bench in (row.benches or "").split(_SEP):
        if bench and bench not in stats.current_benchmarks:
            stats.current_benchmarks.append(bench)
    return stats


def group_stats(*, session: Session, run_pks: list[int]) -> dict[int, list[GroupStats]]:
    """Per-instance-type stats for several runs in one aggregate query (no N+1)."""
    agg = _group_aggregate(run_pks)
    stmt = select(agg).order_by(agg.c.provider, agg.c.instance_type, agg.c.alias)
    result: dict[int, list[GroupStats]] = defaultdict(list)
    for row in session.execute(stmt):
        result[row.run_id].append(_stats(row))
    return result


def task_page(*, session: Session, run: Run, offset: int, limit: int) -> list[Task]:
    """One page of the run's tasks, by group then run number (the dashboard's rows)."""
    stmt = (
        select(Task)
        .where(Task.run_id == run.id)
        .order_by(Task.provider, Task.instance_type, Task.alias, Task.run_number, Task.id)
        .offset(offset)
        .limit(limit)
    )
    return list(session.execute(stmt).scalars())


# Joins the active tasks' benchmark names; heartbeats never carry this control character.
_SEP = "\x1f"


def stop_run(*, session: Session, external_id: int) -> tuple[Run, bool]:
    """End a run early; returns (run, changed). A stopped run is a no-op, a completed one 409."""
    run = session.execute(
        select(Run).where(Run.external_id == external_id).with_for_update()
    ).scalar_one_or_none()
    if run is None:
        raise NotFound(f"run {external_id} not found")
    if run.status == RunStatus.cancelled:
        return run, False
    if run.status == RunStatus.completed:
        raise Conflict(f"run {external_id} already completed; nothing to stop")
    removed = session.execute(
        delete(Task).where(Task.run_id == run.id, Task.status == TaskStatus.pending)
    ).rowcount  # type: ignore[attr-defined]
    now = db_now(session)
    # Run, then task rows: the lock order every report and the sweeper use.
    active = attempts.lock_tasks(session=session, where=[Task.run_id == run.id])
    attempts.record(
        session=session,
        ids=active,
        outcome=AttemptOutcome.cancelled.value,
        error_type=ErrorType.cancelled.value,
        error_message="run stopped early",
    )
    session.execute(
        update(Task)
        .where(Task.id.in_(active), Task.status.in_(ACTIVE_STATUSES))
        .values(
            status=TaskStatus.cancelled,
            finished_at=now,
            error_type=ErrorType.cancelled,
            error_message="run stopped early",
        )
        .execution_options(synchronize_session=False)
    )
    run.removed_tasks = (run.removed_tasks or 0) + removed
    run.status = RunStatus.cancelled
    run.finished_at = now
    run.archive_state = ArchiveState.pending
    session.flush()
    return run, True


def stop_group(
    *, session: Session, external_id: int, provider: str, alias: str, reason: str
) -> tuple[Run, bool]:
    """Stop one instance type of a running run (every runner of it failed): its pending
    tasks are removed, its active ones cancelled; the run goes on for the other types and
    ends as usual when none is left. Returns (run, whether it ended now)."""
    run = session.execute(
        select(Run).where(Run.external_id == external_id).with_for_update()
    ).scalar_one_or_none()
    if run is None:
        raise NotFound(f"run {external_id} not found")
    if run.status != RunStatus.running:
        return run, False
    group = [Task.run_id == run.id, Task.provider == provider, Task.alias == alias]
    removed = session.execute(
        delete(Task).where(*group, Task.status == TaskStatus.pending)
    ).rowcount  # type: ignore[attr-defined]
    active = attempts.lock_tasks(session=session, where=group)
    message = f"instance type stopped: {reason}"
    attempts.record(
        session=session,
        ids=active,
        outcome=AttemptOutcome.cancelled.value,
        error_type=ErrorType.cancelled.value,
        error_message=message,
    )
    session.execute(
        update(Task)
        .where(Task.id.in_(active), Task.status.in_(ACTIVE_STATUSES))
        .values(
            status=TaskStatus.cancelled,
            finished_at=db_now(session),
            error_type=ErrorType.cancelled,
            error_message=message,
        )
        .execution_options(synchronize_session=False)
    )
    run.removed_tasks = (run.removed_tasks or 0) + removed
    session.flush()
    return run, queue.finalize_if_done(session=session, run_pk=run.id)

"""The task queue: the SQL that matters (claim, fenced updates, sweep, finalize).

Every write to a claimed task is fenced: ``WHERE id = … AND lease = … AND status IN …``.
A writer whose update matches no row has lost a race (sweeper, stop, re-claim) and gets
409, so exactly one outcome wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, func, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cloudbench.orchestrator.db import attempts
from cloudbench.orchestrator.db.clock import db_now, db_now_minus
from cloudbench.orchestrator.db.models import Run, Task
from cloudbench.orchestrator.errors import Conflict, Forbidden, NotFound
from cloudbench.protocol import (
    ACTIVE_STATUSES,
    UNFINISHED_STATUSES,
    ArchiveState,
    ErrorType,
    HeartbeatStatus,
    RunStatus,
    TaskStatus,
)


@dataclass(frozen=True)
class Claimed:
    """What a runner needs about its new task, straight from the claim's RETURNING."""

    task_id: int
    provider: str
    instance_type: str
    alias: str
    run_number: int
    lease: int
    run_external_id: int
    ruby_version: str
    benchmarks: dict[str, Any]
    attempt: int
    max_attempts: int


def claim_filter(
    *, provider: str, instance_type: str, alias: str | None, run_external_id: int | None
) -> list[ColumnElement[bool]]:
    """Which tasks a claim may take (any status)."""
    where = [Task.provider == provider, Task.instance_type == instance_type]
    if alias is not None:
        where.append(Task.alias == alias)
    if run_external_id is not None:
        run_pk = select(Run.id).where(Run.external_id == run_external_id).scalar_subquery()
        where.append(Task.run_id == run_pk)
    return where


def claim_task(
    *,
    session: Session,
    provider: str,
    instance_type: str,
    runner_id: str,
    alias: str | None = None,
    run_external_id: int | None = None,
    host: str | None = None,
) -> Claimed | None:
    """Hand the oldest pending task to runner_id, preferring tasks another machine failed.

    A retried task remembers the runner (and host) that failed it; this runner takes it
    only when nothing else is pending for it (best effort, never a stall).
    """
    where = claim_filter(
        provider=provider, instance_type=instance_type, alias=alias,
        run_external_id=run_external_id,
    )  # fmt: skip
    avoid = [Task.runner_id.is_distinct_from(runner_id)]
    if host is not None:
        avoid.append(Task.runner_host.is_distinct_from(host))
    claimed = _claim_one(session, [*where, *avoid], runner_id, host)
    if claimed is None:
        claimed = _claim_one(session, where, runner_id, host)
    return claimed


def _claim_one(
    session: Session, where: list[ColumnElement[bool]], runner_id: str, host: str | None
) -> Claimed | None:
    """Postgres: one statement, the candidate row locked with FOR UPDATE SKIP LOCKED so
    concurrent claimers skip each other instead of queueing. SQLite: the same statement
    is a conditional update inside a BEGIN IMMEDIATE transaction (writers serialise).
    The run's settings come back in the RETURNING clause, so a claim is one round trip.
    """
    candidate = (
        select(Task.id)
        .where(Task.status == TaskStatus.pending, *where)
        .order_by(Task.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    now = db_now(session)
    stmt = (
        update(Task)
        .where(
            Task.id == candidate.scalar_subquery(),
            Task.status == TaskStatus.pending,
        )
        .values(
            status=TaskStatus.claimed,
            runner_id=runner_id,
            runner_host=host,
            lease=Task.lease + 1,
            claimed_at=now,
            heartbeat_at=now,
            heartbeat_status=HeartbeatStatus.boot,
        )
        .returning(
            Task.id,
            Task.provider,
            Task.instance_type,
            Task.alias,
            Task.run_number,
            Task.lease,
            *(_run_column(col) for col in (Run.external_id, Run.ruby_version, Run.benchmarks)),
            Task.attempt,
            _run_column(Run.max_attempts),
        )
        .execution_options(synchronize_session=False)
    )
    row = session.execute(stmt).one_or_none()
    return None if row is None else Claimed(*row)


def _run_column(column: Any) -> Any:
    # A correlated subquery: SQLite's RETURNING cannot name an UPDATE … FROM table.
    return select(column).where(Run.id == Task.run_id).scalar_subquery()


def load_for_runner(*, session: Session, task_id: int, runner_id: str, lease: int | None) -> Task:
    """The checks every runner call makes, in the documented order: 404, 403, 409."""
    task = session.get(Task, task_id, populate_existing=True)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    if task.runner_id != runner_id:
        # Claims refuse NUL, so such an id never held the task (and Postgres text cannot
        # hold NUL: the lookup itself would be a 500).
        held = "\x00" not in runner_id and attempts.held_before(
            session=session, task_id=task_id, runner_id=runner_id
        )
        if held:
            raise Conflict(f"task {task_id} was re-claimed by another runner (attempt "
                           f"{task.attempt}); your attempt ended")  # fmt: skip
        raise Forbidden(f"task {task_id} is not claimed by runner {runner_id!r}")
    if lease is not None and lease != task.lease:
        raise Conflict(f"task {task_id} was re-claimed (lease {task.lease}, yours {lease})")
    return task


def ensure_active(task: Task) -> None:
    if task.status not in ACTIVE_STATUSES:
        detail = f": {task.error_type}" if task.error_type else ""
        raise Conflict(f"task {task.id} is no longer active (status {task.status}{detail})")


def fenced_update(*, session: Session, task: Task, values: dict[str, Any]) -> None:
    """Apply values only if the task is still active under the lease we checked."""
    stmt = (
        update(Task)
        .where(Task.id == task.id, Task.lease == task.lease, Task.status.in_(ACTIVE_STATUSES))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"task {task.id} is no longer active (lost a race with its end)")
    session.refresh(task)


def lock_run(*, session: Session, run_pk: int) -> None:
    """Take the run's row lock before ending one of its tasks.

    Ending a task finalizes the run under this lock, and stop takes it before cancelling
    the run's tasks: locking run → task in both keeps Postgres from a deadlock (500).
    """
    session.execute(select(Run.id).where(Run.id == run_pk).with_for_update())


def lock_task(*, session: Session, task: Task) -> None:
    """Lock the task's row (after the run's) and reload it as it is now."""
    session.execute(
        select(Task)
        .where(Task.id == task.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()  # fetching is what refreshes the loaded object


def heartbeat_values(session: Session, fields: dict[str, Any]) -> dict[str, Any]:
    now = db_now(session)
    values: dict[str, Any] = {"heartbeat_at": now, **fields}
    if fields.get("heartbeat_status") == HeartbeatStatus.running:
        values["status"] = TaskStatus.running
        values["started_at"] = func.coalesce(Task.started_at, now)
    return values


def finish_values(session: Session, status: TaskStatus, **fields: Any) -> dict[str, Any]:
    now = db_now(session)
    heartbeat = "finished" if status == TaskStatus.completed else "error"
    return {"status": status.value, "finished_at": now, "heartbeat_status": heartbeat, **fields}


def sweep_timed_out(*, session: Session, timeout_seconds: float) -> list[int]:
    """End active tasks whose last heartbeat (by the database clock) is too old: back to
    pending for another attempt while the run allows, else failed as ``timeout``.

    The overdue rows are locked with SKIP LOCKED: rows a stop or a report holds are ending
    anyway, so the sweeper never joins a lock cycle, several server processes sweeping at
    once cannot double-end a task, and a late report still wins or gets 409.
    Returns the internal ids of the runs that lost tasks (to check for finalization).
    """
    ids = attempts.lock_tasks(
        session=session,
        where=[Task.heartbeat_at < db_now_minus(session, timeout_seconds)],
        skip_locked=True,
    )
    message = (
        literal(f"no heartbeat for more than {timeout_seconds:g} s; last heartbeat at ")
        + cast(Task.heartbeat_at, String)
        + literal(" UTC")
    )
    final = finish_values(session, TaskStatus.failed, error_type=ErrorType.timeout)
    if not ids:
        return []
    attempts.fail_or_retry(
        session=session,
        ids=ids,
        error_type=ErrorType.timeout,
        error_message=message,
        final_values=final | {"error_message": message},
    )
    runs = session.execute(select(Task.run_id).where(Task.id.in_(ids))).scalars()
    return sorted(set(runs))


def finalize_if_done(*, session: Session, run_pk: int) -> bool:
    """Mark a running run completed once every task is terminal; True only the first time.

    The run row is locked first so two transactions finishing the last two tasks cannot
    each see the other's task as unfinished (write skew) and both skip finalization.
    """
    run = session.execute(
        select(Run)
        .where(Run.id == run_pk)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if run.status != RunStatus.running:
        return False
    unfinished = session.execute(
        select(func.count()).where(Task.run_id == run_pk, Task.status.in_(UNFINISHED_STATUSES))
    ).scalar_one()
    if unfinished:
        return False
    run.status = RunStatus.completed
    run.finished_at = db_now(session)
    run.archive_state = ArchiveState.pending
    session.flush()
    return True


def finalize_stragglers(*, session: Session) -> list[int]:
    """Runs left running with nothing to do (e.g. a crash between commit and finalize)."""
    unfinished = select(Task.id).where(Task.run_id == Run.id, Task.status.in_(UNFINISHED_STATUSES))
    candidates = session.execute(
        select(Run.id)
        .where(Run.status == RunStatus.running, ~unfinished.exists())
        .order_by(Run.id)  # one lock order for every server process sweeping at once
    ).scalars()
    return [pk for pk in list(candidates) if finalize_if_done(session=session, run_pk=pk)]

"""The task queue: fenced updates, sweep, finalize (the claim is db/hot.py and db/batch.py).

Every write to a claimed task is fenced: ``WHERE id = … AND lease = … AND status IN …``.
A writer whose update matches no row has lost a race (sweeper, stop, re-claim) and gets
409, so exactly one outcome wins.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, literal, select, update
from sqlalchemy.orm import Session

from cloudbench.orchestrator.db import attempts, hot
from cloudbench.orchestrator.db.clock import db_now, db_now_minus
from cloudbench.orchestrator.db.models import Run, Task
from cloudbench.orchestrator.errors import Conflict, NotFound
from cloudbench.protocol import (
    ACTIVE_STATUSES,
    UNFINISHED_STATUSES,
    ArchiveState,
    ErrorType,
    RunStatus,
    TaskStatus,
)


def load_for_runner(*, session: Session, task_id: int, runner_id: str, lease: int | None) -> Task:
    """The checks every runner call makes, in the documented order: 404, 403, 409."""
    task = session.get(Task, task_id, populate_existing=True)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    hot.check_holder(
        task_id,
        task.runner_id,
        task.lease,
        task.attempt,
        runner_id,
        lease,
        lambda: attempts.held_before(session=session, task_id=task_id, runner_id=runner_id),
    )
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
    # The first unfinished task answers it: counting them all is O(tasks) per report.
    unfinished = session.execute(
        select(Task.id).where(Task.run_id == run_pk, Task.status.in_(UNFINISHED_STATUSES)).limit(1)
    ).first()
    if unfinished is not None:
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

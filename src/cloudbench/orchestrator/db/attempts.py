"""Attempts: how a task's attempt ends (completed, retried, failed, cancelled) and its history.

A retryable failure (protocol.RETRYABLE_ERRORS) puts the *same* task back to pending with
attempt + 1 while the run's max_attempts allow; the next claim bumps the lease, which
fences the old runner. Every ended attempt is copied into task_attempts first, so the
history survives the task row being reused.

Callers lock the task rows (``lock_tasks``) before ending them: the history insert and
the updates then run against rows nobody else can end at the same time, in one lock
order (run, then task) shared with reports, stop and the sweeper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, insert, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cloudbench.orchestrator.db.clock import db_now
from cloudbench.orchestrator.db.models import Run, Task, TaskAttempt
from cloudbench.protocol import (
    ACTIVE_STATUSES,
    RETRYABLE_ERRORS,
    AttemptOut,
    AttemptOutcome,
    ErrorType,
    TaskStatus,
)


def lock_tasks(
    *, session: Session, where: Sequence[ColumnElement[bool]], skip_locked: bool = False
) -> list[int]:
    """Lock the active tasks matching where (in id order); their ids."""
    stmt = (
        select(Task.id)
        .where(*where, Task.status.in_(ACTIVE_STATUSES))
        .order_by(Task.id)
        .with_for_update(skip_locked=skip_locked)
    )
    return list(session.execute(stmt).scalars())


def _run_max_attempts() -> Any:
    return select(Run.max_attempts).where(Run.id == Task.run_id).scalar_subquery()


def _can_retry() -> ColumnElement[bool]:
    return Task.attempt < _run_max_attempts()  # type: ignore[no-any-return]


def record(
    *,
    session: Session,
    ids: list[int],
    outcome: Any,
    error_type: Any = None,
    error_message: Any = None,
) -> None:
    """Copy the current attempt of each task in ids into the history, as ended now."""
    columns = ["task_id", "attempt", "outcome", "runner_id", "runner_host"]
    columns += ["error_type", "error_message", "started_at", "finished_at"]
    source = select(
        Task.id,
        Task.attempt,
        outcome if isinstance(outcome, ColumnElement) else literal(str(outcome)),
        Task.runner_id,
        Task.runner_host,
        literal(error_type, type_=TaskAttempt.error_type.type),
        error_message
        if isinstance(error_message, ColumnElement)
        else literal(error_message, type_=TaskAttempt.error_message.type),
        Task.claimed_at,
        db_now(session),
    ).where(Task.id.in_(ids), Task.status.in_(ACTIVE_STATUSES))
    session.execute(insert(TaskAttempt).from_select(columns, source))


def retry_values() -> dict[str, Any]:
    """Back to pending for the next attempt; runner_id/runner_host keep the failed holder."""
    cleared = ["claimed_at", "heartbeat_at", "heartbeat_status", "current_benchmark"]
    cleared += ["progress_pct", "heartbeat_message", "started_at", "error_type"]
    cleared += ["error_message", "error_key", "result_key", "finished_at"]
    return {
        "status": TaskStatus.pending.value,
        "attempt": Task.attempt + 1,
        **dict.fromkeys(cleared),
    }


def fail_or_retry(
    *,
    session: Session,
    ids: list[int],
    error_type: ErrorType,
    error_message: Any,
    final_values: dict[str, Any],
) -> tuple[list[int], list[int]]:
    """End the locked tasks' attempts with a failure; returns (retried ids, failed ids)."""
    if not ids:
        return [], []
    retryable = error_type in RETRYABLE_ERRORS
    outcome: Any = AttemptOutcome.failed
    if retryable:
        outcome = case(
            (_can_retry(), literal(AttemptOutcome.retried.value)),
            else_=literal(AttemptOutcome.failed.value),
        )
    record(
        session=session,
        ids=ids,
        outcome=outcome,
        error_type=error_type.value,
        error_message=error_message,
    )
    retried: list[int] = []
    if retryable:
        retried = _update(session, ids, [_can_retry()], retry_values())
    failed = _update(session, ids, [], final_values)
    return retried, failed


def _update(
    session: Session, ids: list[int], where: list[ColumnElement[bool]], values: dict[str, Any]
) -> list[int]:
    stmt = (
        update(Task)
        .where(Task.id.in_(ids), Task.status.in_(ACTIVE_STATUSES), *where)
        .values(**values)
        .returning(Task.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.execute(stmt).scalars())


def held_before(*, session: Session, task_id: int, runner_id: str) -> bool:
    """Whether runner_id ran an earlier attempt of the task (then it gets 409, not 403)."""
    stmt = select(TaskAttempt.id).where(
        TaskAttempt.task_id == task_id, TaskAttempt.runner_id == runner_id
    )
    return session.execute(stmt.limit(1)).first() is not None


def history(
    *, session: Session, run_pk: int, task_id: int | None = None
) -> dict[int, list[TaskAttempt]]:
    """Ended attempts per task of a run (or one task), oldest first, in one query."""
    by_task: dict[int, list[TaskAttempt]] = {}
    stmt = (
        select(TaskAttempt)
        .join(Task, Task.id == TaskAttempt.task_id)
        .where(Task.run_id == run_pk)
        .order_by(TaskAttempt.task_id, TaskAttempt.attempt)
    )
    if task_id is not None:
        stmt = stmt.where(TaskAttempt.task_id == task_id)
    for row in session.execute(stmt).scalars():
        by_task.setdefault(row.task_id, []).append(row)
    return by_task


def latest(*, session: Session, task_id: int) -> TaskAttempt | None:
    """The most recently ended attempt of a task."""
    stmt = (
        select(TaskAttempt)
        .where(TaskAttempt.task_id == task_id)
        .order_by(TaskAttempt.attempt.desc())
        .limit(1)
    )
    return session.execute(stmt).scalar_one_or_none()


def to_wire(row: TaskAttempt) -> AttemptOut:
    """The shape GET /runs/{id}/tasks and manifest.json share."""
    return AttemptOut(
        attempt=row.attempt,
        outcome=AttemptOutcome(row.outcome),
        runner_id=row.runner_id,
        host=row.runner_host,
        error_type=row.error_type,
        error_message=row.error_message,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )

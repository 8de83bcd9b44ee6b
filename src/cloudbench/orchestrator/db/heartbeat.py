"""A heartbeat as one fenced UPDATE … RETURNING: the hottest write the orchestrator takes.

Thousands of runner slots heartbeat every few seconds, so the happy path is a single
round trip: the runner, lease and active-status checks are the statement's WHERE, the
database clock is inside it, and RETURNING carries the whole response. Only a refused
heartbeat pays for a second look, to say which check failed (404, 403 or 409, in the
same order as every other runner call).
"""

from __future__ import annotations

import functools
from typing import Any, NoReturn

from sqlalchemy import Update, bindparam, func, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from cloudbench.orchestrator.db.clock import now_in
from cloudbench.orchestrator.db.models import TASKS
from cloudbench.orchestrator.db.queue import ensure_active, load_for_runner, run_column
from cloudbench.orchestrator.errors import Conflict
from cloudbench.protocol import ACTIVE_STATUSES, HeartbeatStatus, TaskStatus

RUN_EXTERNAL_ID = "run_external_id"


def record_heartbeat(
    *, session: Session, task_id: int, runner_id: str, lease: int | None, fields: dict[str, Any]
) -> RowMapping:
    """Store a heartbeat's fields; returns every task column plus the run's external id.

    fields holds only what the runner sent (always heartbeat_status); unsent fields keep
    their stored values. "running" also moves the task to running and stamps started_at
    once.
    """
    running = fields.get("heartbeat_status") == HeartbeatStatus.running
    stmt = _statement(
        session.get_bind().dialect.name, frozenset(fields), running, lease is not None
    )
    params: dict[str, Any] = {f"v_{name}": value for name, value in fields.items()}
    params |= {"p_task_id": task_id, "p_runner_id": runner_id, "p_lease": lease}
    row = session.connection().execute(stmt, params).mappings().one_or_none()
    if row is None:
        _raise_refusal(session, task_id, runner_id, lease)
    return row


@functools.cache
def _statement(dialect: str, names: frozenset[str], running: bool, fenced: bool) -> Update:
    """One statement per shape of request (a few dozen at most), built once."""
    tasks = TASKS.c
    now = now_in(dialect)
    values: dict[str, Any] = {"heartbeat_at": now}
    values |= {name: bindparam(f"v_{name}", type_=tasks[name].type) for name in names}
    if running:
        values["status"] = TaskStatus.running
        values["started_at"] = func.coalesce(tasks.started_at, now)
    where = [
        tasks.id == bindparam("p_task_id"),
        tasks.runner_id == bindparam("p_runner_id"),
        tasks.status.in_(ACTIVE_STATUSES),
    ]
    if fenced:
        where.append(tasks.lease == bindparam("p_lease"))
    return (
        update(TASKS)
        .where(*where)
        .values(values)
        .returning(*tasks, run_column("external_id").label(RUN_EXTERNAL_ID))
    )


def _raise_refusal(session: Session, task_id: int, runner_id: str, lease: int | None) -> NoReturn:
    task = load_for_runner(session=session, task_id=task_id, runner_id=runner_id, lease=lease)
    ensure_active(task)
    raise Conflict(f"task {task.id} is no longer active (lost a race with its end)")

"""The runner hot paths, claim and heartbeat, one by one on a SQLAlchemy connection.

The statements are db/statements.py's (the dialect's one claim and one heartbeat
statement); db/batch.py runs the same Postgres text for many claims at once. Here a claim
that statement could not serve, or a heartbeat it refused, gets its explanation: an empty
queue or a retry to come, a missing run, 404/403/409.

Functions take a Core ``Connection`` and never commit: the routes run them in one
transaction in a worker thread (db/executor.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, Select, select

from cloudbench.orchestrator.db import statements
from cloudbench.orchestrator.db.models import Run, Task, TaskAttempt
from cloudbench.orchestrator.db.statements import Beat, Kind
from cloudbench.orchestrator.errors import Conflict, Forbidden, NotFound
from cloudbench.protocol import ACTIVE_STATUSES


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


@dataclass(frozen=True)
class ClaimOutcome:
    claimed: Claimed | None
    # Nothing pending, but an active task may still fail over to this runner.
    wait: bool = False


def claim(
    *,
    conn: Connection,
    provider: str,
    instance_type: str,
    runner_id: str,
    alias: str | None = None,
    run_external_id: int | None = None,
    host: str | None = None,
) -> ClaimOutcome:
    """Hand the oldest pending task to runner_id, preferring tasks this runner (and host)
    did not fail before (a retried task remembers who failed it; best effort, never a
    stall); when none is left, say whether one may still come back (wait)."""
    kind = Kind(provider, instance_type, alias, run_external_id)
    for avoid in (True, False):
        claimed = claim_one(conn, kind, runner_id, host, avoid=avoid)
        if claimed is not None:
            return ClaimOutcome(claimed)
    if run_external_id is not None:
        found = conn.execute(select(Run.id).where(Run.external_id == run_external_id)).first()
        if found is None:
            raise NotFound(f"run {run_external_id} not found")
    retry = retry_possible_statement(alias=alias is not None, run=run_external_id is not None)
    params = statements.core_claim_params(kind, runner_id, host)
    return ClaimOutcome(None, wait=conn.execute(retry, params).first() is not None)


def claim_one(
    conn: Connection, kind: Kind, runner_id: str, host: str | None, *, avoid: bool
) -> Claimed | None:
    """The dialect's claim statement for one claimer."""
    if conn.dialect.name == "postgresql":
        sql, params = statements.postgres_claim_call(kind, [(runner_id, host)], avoid=avoid)
        row = conn.exec_driver_sql(sql, params).one_or_none()
        return None if row is None else Claimed(*row[:-1])  # the last column is ord
    stmt = statements.sqlite_claim_statement(
        alias=kind.alias is not None,
        run=kind.run_external_id is not None,
        avoid=avoid,
        host=host is not None,
    )
    row = conn.execute(stmt, statements.core_claim_params(kind, runner_id, host)).one_or_none()
    return None if row is None else Claimed(*row)


def heartbeat(
    *, conn: Connection, task_id: int, runner_id: str, lease: int | None, fields: dict[str, Any]
) -> Row[Any]:
    """Record a heartbeat in one fenced UPDATE; on no match, say why (404, 403, 409).

    fields: heartbeat_status plus any of statements.HEARTBEAT_FIELDS the runner sent.
    """
    beat: Beat = (task_id, runner_id, lease, fields)
    kind = statements.beat_kind(fields, lease)
    if conn.dialect.name == "postgresql":
        sql, params = statements.postgres_heartbeat_call(kind, [beat])
        row = conn.exec_driver_sql(sql, params).one_or_none()  # its last column is ord
    else:
        stmt = statements.sqlite_heartbeat_statement(kind)
        row = conn.execute(stmt, statements.sqlite_heartbeat_params(beat)).one_or_none()
    if row is None:
        refuse(conn=conn, task_id=task_id, runner_id=runner_id, lease=lease)
        raise Conflict(f"task {task_id} is no longer active (lost a race with its end)")
    return row


def refuse(*, conn: Connection, task_id: int, runner_id: str, lease: int | None) -> None:
    """Raise what a runner call on this task gets, if anything (the slow path)."""
    cols = (Task.status, Task.runner_id, Task.lease, Task.attempt, Task.error_type)
    found = conn.execute(select(*cols).where(Task.id == task_id)).one_or_none()
    if found is None:
        raise NotFound(f"task {task_id} not found")
    status, holder, held_lease, attempt, error_type = found

    def held() -> bool:
        stmt = select(TaskAttempt.id).where(
            TaskAttempt.task_id == task_id, TaskAttempt.runner_id == runner_id
        )
        return conn.execute(stmt.limit(1)).first() is not None

    check_holder(task_id, holder, held_lease, attempt, runner_id, lease, held)
    if status not in ACTIVE_STATUSES:
        detail = f": {error_type}" if error_type else ""
        raise Conflict(f"task {task_id} is no longer active (status {status}{detail})")


def check_holder(
    task_id: int,
    holder: str | None,
    held_lease: int,
    attempt: int,
    runner_id: str,
    lease: int | None,
    held_before: Callable[[], bool],
) -> None:
    """The checks every runner call makes, in the documented order: 403/409, then lease."""
    if holder != runner_id:
        # Claims refuse NUL, so such an id never held the task (and Postgres text cannot
        # hold NUL: the lookup itself would be a 500).
        if "\x00" not in runner_id and held_before():
            raise Conflict(
                f"task {task_id} was re-claimed by another runner (attempt "
                f"{attempt}); your attempt ended"
            )
        raise Forbidden(f"task {task_id} is not claimed by runner {runner_id!r}")
    if lease is not None and lease != held_lease:
        raise Conflict(f"task {task_id} was re-claimed (lease {held_lease}, yours {lease})")


@lru_cache(maxsize=8)
def retry_possible_statement(*, alias: bool, run: bool) -> Select[Any]:
    """An active task of this kind could still come back for another attempt (both
    dialects; parameters as statements.kind_filter's)."""
    max_attempts = select(Run.max_attempts).where(Run.id == Task.run_id).scalar_subquery()
    return (
        select(Task.id)
        .where(*statements.kind_filter(alias, run), Task.status.in_(ACTIVE_STATUSES))
        .where(Task.attempt < max_attempts)
        .limit(1)
    )

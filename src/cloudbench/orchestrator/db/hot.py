"""The runner hot paths, claim and heartbeat: one statement each on the common path.

Each statement is built once per shape (which optional filters and fields a request
has) and dialect, with bound parameters, so a request costs no statement construction.
The database clock is inside the statement and RETURNING carries what the response
needs (the run's external id, settings and max_attempts come from correlated
subqueries: SQLite's RETURNING cannot name an UPDATE … FROM table).

Functions take a Core ``Connection`` and never commit: ``hotpath`` runs them either
on an async Postgres connection (no thread hop) or in a SQLite transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, Select, Update, bindparam, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from cloudbench.orchestrator.db.clock import now_for
from cloudbench.orchestrator.db.models import Run, Task, TaskAttempt
from cloudbench.orchestrator.errors import Conflict, Forbidden, NotFound
from cloudbench.protocol import ACTIVE_STATUSES, HeartbeatStatus, TaskStatus

# What a heartbeat may set besides heartbeat_at/heartbeat_status (HeartbeatRequest).
HEARTBEAT_FIELDS = frozenset({"current_benchmark", "progress_pct", "heartbeat_message"})
_COLUMNS = Task.__table__.c


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


def _run_column(column: Any, label: str) -> Any:
    return select(column).where(Run.id == Task.run_id).scalar_subquery().label(label)


def _p(name: str, column: str | None = None) -> Any:
    # Bound parameters are prefixed: names equal to a SET column are reserved by SQLAlchemy.
    return bindparam(f"p_{name}", type_=_COLUMNS[column or name].type)


def _filter(alias: bool, run: bool) -> list[ColumnElement[bool]]:
    where = [Task.provider == _p("provider"), Task.instance_type == _p("instance_type")]
    if alias:
        where.append(Task.alias == _p("alias"))
    if run:
        ext = bindparam("p_run", type_=Run.__table__.c.external_id.type)
        where.append(Task.run_id == select(Run.id).where(Run.external_id == ext).scalar_subquery())
    return where


@lru_cache(maxsize=64)
def claim_statement(dialect: str, *, alias: bool, run: bool, avoid: bool, host: bool) -> Update:
    """Postgres: the candidate row is locked FOR UPDATE SKIP LOCKED, so concurrent
    claimers skip each other instead of queueing. SQLite runs it inside BEGIN IMMEDIATE.
    ``avoid``: only tasks this runner (and host) did not fail before."""
    where = _filter(alias, run)
    if avoid:
        where.append(Task.runner_id.is_distinct_from(_p("runner", "runner_id")))
        if host:
            where.append(Task.runner_host.is_distinct_from(_p("host", "runner_host")))
    candidate = (
        select(Task.id)
        .where(Task.status == TaskStatus.pending, *where)
        .order_by(Task.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    now = now_for(dialect)
    return (
        update(Task)
        .where(Task.id == candidate.scalar_subquery(), Task.status == TaskStatus.pending)
        .values(
            status=TaskStatus.claimed,
            runner_id=_p("runner", "runner_id"),
            runner_host=_p("host", "runner_host"),
            lease=Task.lease + 1,
            claimed_at=now,
            heartbeat_at=now,
            heartbeat_status=HeartbeatStatus.boot,
        )
        .returning(
            *(Task.id, Task.provider, Task.instance_type, Task.alias, Task.run_number),
            Task.lease,
            _run_column(Run.external_id, "run_external_id"),
            _run_column(Run.ruby_version, "ruby_version"),
            _run_column(Run.benchmarks, "benchmarks"),
            Task.attempt,
            _run_column(Run.max_attempts, "max_attempts"),
        )
    )


@lru_cache(maxsize=8)
def retry_possible_statement(*, alias: bool, run: bool) -> Select[Any]:
    """An active task of this kind could still come back for another attempt."""
    max_attempts = select(Run.max_attempts).where(Run.id == Task.run_id).scalar_subquery()
    return (
        select(Task.id)
        .where(*_filter(alias, run), Task.status.in_(ACTIVE_STATUSES))
        .where(Task.attempt < max_attempts)
        .limit(1)
    )


def claim_shape(
    *, alias: str | None, run_external_id: int | None, host: str | None
) -> dict[str, bool]:
    """Which claim_statement a request needs (its optional filters)."""
    return {
        "alias": alias is not None,
        "run": run_external_id is not None,
        "host": host is not None,
    }


def claim_params(
    provider: str,
    instance_type: str,
    runner_id: str,
    alias: str | None,
    run_external_id: int | None,
    host: str | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"p_provider": provider, "p_instance_type": instance_type}
    params["p_runner"] = runner_id
    return params | {"p_alias": alias, "p_run": run_external_id, "p_host": host}


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
    """Hand the oldest pending task to runner_id, preferring tasks another machine failed
    (a retried task remembers who failed it; best effort, never a stall)."""
    params = claim_params(provider, instance_type, runner_id, alias, run_external_id, host)
    shape = claim_shape(alias=alias, run_external_id=run_external_id, host=host)
    dialect = conn.dialect.name
    for avoid in (True, False):
        stmt = claim_statement(dialect, **shape, avoid=avoid)
        row = conn.execute(stmt, params).one_or_none()
        if row is not None:
            return ClaimOutcome(Claimed(*row))
    if run_external_id is not None:
        found = conn.execute(select(Run.id).where(Run.external_id == run_external_id)).first()
        if found is None:
            raise NotFound(f"run {run_external_id} not found")
    retry = retry_possible_statement(alias=shape["alias"], run=shape["run"])
    wait = conn.execute(retry, params).first() is not None
    return ClaimOutcome(None, wait=wait)


@lru_cache(maxsize=64)
def heartbeat_statement(
    dialect: str, *, fields: frozenset[str], running: bool, lease: bool
) -> Update:
    now = now_for(dialect)
    values: dict[str, Any] = {"heartbeat_at": now, "heartbeat_status": _p("heartbeat_status")}
    values |= {name: _p(name) for name in sorted(fields)}
    if running:
        values["status"] = TaskStatus.running
        values["started_at"] = func.coalesce(Task.started_at, now)
    where = [Task.id == _p("id"), Task.runner_id == _p("runner", "runner_id")]
    where.append(Task.status.in_(ACTIVE_STATUSES))
    if lease:
        where.append(Task.lease == _p("lease"))
    return (
        update(Task)
        .where(*where)
        .values(**values)
        .returning(
            *_COLUMNS,
            _run_column(Run.external_id, "run_external_id"),
            _run_column(Run.max_attempts, "run_max_attempts"),
        )
    )


def heartbeat_call(
    dialect: str, task_id: int, runner_id: str, lease: int | None, fields: dict[str, Any]
) -> tuple[Update, dict[str, Any]]:
    """The heartbeat's statement and parameters (fields: see heartbeat)."""
    extra = frozenset(fields) - {"heartbeat_status"}
    assert extra <= HEARTBEAT_FIELDS, extra
    running = fields["heartbeat_status"] == HeartbeatStatus.running
    stmt = heartbeat_statement(dialect, fields=extra, running=running, lease=lease is not None)
    params = {f"p_{k}": v for k, v in fields.items()}
    return stmt, params | {"p_id": task_id, "p_runner": runner_id, "p_lease": lease}


def heartbeat(
    *, conn: Connection, task_id: int, runner_id: str, lease: int | None, fields: dict[str, Any]
) -> Row[Any]:
    """Record a heartbeat in one fenced UPDATE; on no match, say why (404, 403, 409).

    fields: heartbeat_status plus any of HEARTBEAT_FIELDS the runner sent.
    """
    stmt, params = heartbeat_call(conn.dialect.name, task_id, runner_id, lease, fields)
    row = conn.execute(stmt, params).one_or_none()
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
            raise Conflict(f"task {task_id} was re-claimed by another runner (attempt "
                           f"{attempt}); your attempt ended")  # fmt: skip
        raise Forbidden(f"task {task_id} is not claimed by runner {runner_id!r}")
    if lease is not None and lease != held_lease:
        raise Conflict(f"task {task_id} was re-claimed (lease {held_lease}, yours {lease})")

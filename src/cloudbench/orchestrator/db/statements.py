"""The claim and the heartbeat statement: one of each per dialect, defined here only.

Postgres: plain SQL text with psycopg's ``%(name)s`` parameters, for any number of claims
(or heartbeats) of one kind at once. ``db/batch.py`` runs it for the claims that arrive
together on the psycopg pool; ``db/hot.py`` runs it for one claim on a SQLAlchemy
connection (``exec_driver_sql``), so both routes send the same text and Postgres keeps one
prepared plan. A LIMIT of one and one-element arrays are the one-by-one case.

SQLite: SQLAlchemy Core, one row at a time inside ``BEGIN IMMEDIATE`` (no row locks, no
``unnest``; one writer at a time anyway).

Each statement is built once per shape (which optional filters and fields a request has),
with bound parameters: a request costs no statement construction. The database clock is
inside the statement, and RETURNING carries what the response needs (the run's external
id, settings and max_attempts come from correlated subqueries: SQLite's RETURNING cannot
name an UPDATE … FROM table). Every status comes from the protocol's enums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from sqlalchemy import Update, bindparam, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from cloudbench.orchestrator.db.clock import now_for
from cloudbench.orchestrator.db.models import Run, Task
from cloudbench.protocol import ACTIVE_STATUSES, HeartbeatStatus, TaskStatus

_COLUMNS = Task.__table__.c
TASK_COLUMNS = tuple(c.name for c in _COLUMNS)
# A heartbeat's RETURNING row, by name (without the Postgres statement's trailing ord).
BEAT_NAMES = (*TASK_COLUMNS, "run_external_id", "run_max_attempts")
# The columns a heartbeat may set besides heartbeat_at/heartbeat_status (HeartbeatRequest),
# with their Postgres types for the unnest arrays.
_BEAT_TYPES = {
    "heartbeat_status": "varchar",
    "current_benchmark": "varchar",
    "progress_pct": "float8",
    "heartbeat_message": "text",
}
HEARTBEAT_FIELDS = frozenset(_BEAT_TYPES) - {"heartbeat_status"}


@dataclass(frozen=True)
class Kind:
    """A claim's filters: claims share a statement only when these are equal."""

    provider: str
    instance_type: str
    alias: str | None
    run_external_id: int | None


@dataclass(frozen=True)
class BeatKind:
    """A heartbeat's shape: heartbeats share a statement when they set the same columns."""

    fields: frozenset[str]
    running: bool
    lease: bool


Claimer = tuple[str, str | None]  # runner id, host
Beat = tuple[int, str, int | None, dict[str, Any]]  # task id, runner id, lease, fields


def _sql_list(values: Sequence[Enum]) -> str:
    """A constant IN list from enum members (never a value from a request)."""
    return ", ".join(f"'{v.value}'" for v in values)


def limit_for(n: int) -> int:
    """A constant LIMIT of at least n: a bound LIMIT makes Postgres' cached generic plan
    assume a tenth of the table and sort it (measured: 3 ms a claim); powers of two keep
    the prepared statements per connection few."""
    return 1 << (n - 1).bit_length()


_RUN_COLUMN = "(SELECT runs.{0} FROM runs WHERE runs.id = t.run_id)"


@lru_cache(maxsize=64)
def postgres_claim_sql(*, alias: bool, run: bool, limit: int) -> str:
    """Up to ``limit`` pending tasks, oldest first, one per claimer in arrival order; a row
    per claim served: (Claimed's fields…, ord), ord the claimer's 1-based position.

    The preference: nobody gets a task that a runner or host in ``avoid_runners`` /
    ``avoid_hosts`` failed before (empty arrays: no preference)."""
    where = [
        f"status = '{TaskStatus.pending.value}'",
        "provider = %(provider)s",
        "instance_type = %(type)s",
    ]
    if alias:
        where.append("alias = %(alias)s")
    if run:
        where.append("run_id = (SELECT id FROM runs WHERE external_id = %(run)s)")
    where.append("(runner_id IS NULL OR runner_id <> ALL(%(avoid_runners)s::varchar[]))")
    where.append("(runner_host IS NULL OR runner_host <> ALL(%(avoid_hosts)s::varchar[]))")
    # FOR UPDATE cannot sit beside a window function: lock in the inner query, number after.
    # The UPDATE does not test status again: the rows are locked since they were found
    # pending, and that test let the planner scan every pending row of the partial index
    # for each task (17 ms a claim on a 180,000-task table) instead of the primary key.
    # Only constant fragments are joined here; every value is a bound parameter.
    return f"""
UPDATE tasks AS t
SET status = '{TaskStatus.claimed.value}', runner_id = req.runner_id, runner_host = req.host,
    lease = t.lease + 1, claimed_at = statement_timestamp(),
    heartbeat_at = statement_timestamp(),
    heartbeat_status = '{HeartbeatStatus.boot.value}'
FROM (
    SELECT id, row_number() OVER (ORDER BY id) AS ord FROM (
        SELECT id FROM tasks WHERE {" AND ".join(where)}
        ORDER BY id LIMIT {int(limit)} FOR UPDATE SKIP LOCKED
    ) locked
) cand
JOIN unnest(%(runners)s::varchar[], %(hosts)s::varchar[])
    WITH ORDINALITY AS req(runner_id, host, ord) ON req.ord = cand.ord
WHERE t.id = cand.id
RETURNING t.id, t.provider, t.instance_type, t.alias, t.run_number, t.lease,
    {_RUN_COLUMN.format("external_id")} AS run_external_id,
    {_RUN_COLUMN.format("ruby_version")} AS ruby_version,
    {_RUN_COLUMN.format("benchmarks")} AS benchmarks, t.attempt,
    {_RUN_COLUMN.format("max_attempts")} AS max_attempts, req.ord
"""  # noqa: S608


def postgres_claim_call(
    kind: Kind, claimers: list[Claimer], *, avoid: bool
) -> tuple[str, dict[str, Any]]:
    """postgres_claim_sql and its parameters for claimers of one kind.

    avoid: no claimer gets a task that any of them (runner or host) failed before."""
    runners = [r for r, _ in claimers]
    hosts = [h for _, h in claimers]
    params: dict[str, Any] = {
        "provider": kind.provider,
        "type": kind.instance_type,
        "alias": kind.alias,
        "run": kind.run_external_id,
        "runners": runners,
        "hosts": hosts,
        "avoid_runners": runners if avoid else [],
        "avoid_hosts": [h for h in hosts if h is not None] if avoid else [],
    }
    shape = {"alias": kind.alias is not None, "run": kind.run_external_id is not None}
    return postgres_claim_sql(**shape, limit=limit_for(len(claimers))), params


@lru_cache(maxsize=64)
def postgres_heartbeat_sql(kind: BeatKind) -> str:
    """Heartbeats for many tasks, each row its own values, each fenced by task id, runner,
    an active status and (kind.lease) the lease; a row per heartbeat recorded:
    (BEAT_NAMES…, ord), ord the heartbeat's 1-based position."""
    columns = ["heartbeat_status", *sorted(kind.fields)]
    sets = ["heartbeat_at = statement_timestamp()", *(f"{c} = v.{c}" for c in columns)]
    if kind.running:
        sets.append(f"status = '{TaskStatus.running.value}'")
        sets.append("started_at = coalesce(t.started_at, statement_timestamp())")
    arrays = ", ".join(f"%({c})s::{_BEAT_TYPES[c]}[]" for c in columns)
    where = "t.id = v.id AND t.runner_id = v.runner"
    where += f" AND t.status IN ({_sql_list(ACTIVE_STATUSES)})"
    if kind.lease:
        where += " AND t.lease = v.lease"
    returning = ", ".join(f"t.{c}" for c in TASK_COLUMNS)
    return f"""
UPDATE tasks AS t SET {", ".join(sets)}
FROM unnest(%(ids)s::integer[], %(runners)s::varchar[], %(leases)s::integer[], {arrays})
    WITH ORDINALITY AS v(id, runner, lease, {", ".join(columns)}, ord)
WHERE {where}
RETURNING {returning}, {_RUN_COLUMN.format("external_id")} AS run_external_id,
    {_RUN_COLUMN.format("max_attempts")} AS run_max_attempts, v.ord
"""  # noqa: S608


def postgres_heartbeat_call(kind: BeatKind, beats: list[Beat]) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "ids": [b[0] for b in beats],
        "runners": [b[1] for b in beats],
        "leases": [b[2] for b in beats],
    }
    for column in ("heartbeat_status", *kind.fields):
        params[column] = [_plain(b[3][column]) for b in beats]
    return postgres_heartbeat_sql(kind), params


def _plain(value: Any) -> Any:
    # psycopg would send an Enum's name; the column holds its value.
    return value.value if isinstance(value, Enum) else value


def beat_kind(fields: dict[str, Any], lease: int | None) -> BeatKind:
    """The shape of a heartbeat (fields: heartbeat_status plus any of HEARTBEAT_FIELDS)."""
    extra = frozenset(fields) - {"heartbeat_status"}
    assert extra <= HEARTBEAT_FIELDS, extra
    running = fields["heartbeat_status"] == HeartbeatStatus.running
    return BeatKind(extra, running, lease is not None)


# SQLite: SQLAlchemy Core. Bound parameters are prefixed: names equal to a SET column are
# reserved by SQLAlchemy.


def _run_column(column: Any, label: str) -> Any:
    return select(column).where(Run.id == Task.run_id).scalar_subquery().label(label)


def _p(name: str, column: str | None = None) -> Any:
    return bindparam(f"p_{name}", type_=_COLUMNS[column or name].type)


def kind_filter(alias: bool, run: bool) -> list[ColumnElement[bool]]:
    """Which tasks a claim of this shape may take (any status); parameters p_provider,
    p_instance_type, p_alias, p_run (see core_claim_params)."""
    where = [Task.provider == _p("provider"), Task.instance_type == _p("instance_type")]
    if alias:
        where.append(Task.alias == _p("alias"))
    if run:
        ext = bindparam("p_run", type_=Run.__table__.c.external_id.type)
        where.append(Task.run_id == select(Run.id).where(Run.external_id == ext).scalar_subquery())
    return where


@lru_cache(maxsize=64)
def sqlite_claim_statement(*, alias: bool, run: bool, avoid: bool, host: bool) -> Update:
    """The oldest pending task of the kind to one runner (run inside BEGIN IMMEDIATE).
    ``avoid``: only tasks this runner (and host) did not fail before."""
    where = kind_filter(alias, run)
    if avoid:
        where.append(Task.runner_id.is_distinct_from(_p("runner", "runner_id")))
        if host:
            where.append(Task.runner_host.is_distinct_from(_p("host", "runner_host")))
    candidate = select(Task.id).where(Task.status == TaskStatus.pending, *where)
    now = now_for("sqlite")
    return (
        update(Task)
        .where(
            Task.id == candidate.order_by(Task.id).limit(1).scalar_subquery(),
            Task.status == TaskStatus.pending,
        )
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


def core_claim_params(kind: Kind, runner_id: str, host: str | None) -> dict[str, Any]:
    return {
        "p_provider": kind.provider,
        "p_instance_type": kind.instance_type,
        "p_alias": kind.alias,
        "p_run": kind.run_external_id,
        "p_runner": runner_id,
        "p_host": host,
    }


@lru_cache(maxsize=64)
def sqlite_heartbeat_statement(kind: BeatKind) -> Update:
    now = now_for("sqlite")
    values: dict[str, Any] = {"heartbeat_at": now, "heartbeat_status": _p("heartbeat_status")}
    values |= {name: _p(name) for name in sorted(kind.fields)}
    if kind.running:
        values["status"] = TaskStatus.running
        values["started_at"] = func.coalesce(Task.started_at, now)
    where = [Task.id == _p("id"), Task.runner_id == _p("runner", "runner_id")]
    where.append(Task.status.in_(ACTIVE_STATUSES))
    if kind.lease:
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


def sqlite_heartbeat_params(beat: Beat) -> dict[str, Any]:
    task_id, runner_id, lease, fields = beat
    params = {f"p_{k}": v for k, v in fields.items()}
    return params | {"p_id": task_id, "p_runner": runner_id, "p_lease": lease}

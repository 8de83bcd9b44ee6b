"""Concurrent claims (and heartbeats) of one kind answered by one statement (Postgres).

At 64 claiming runners a server process holds dozens of claims for the same instance
type at once; one UPDATE per claim pays a statement and a commit (a WAL flush) each.
Here the claims that arrive while a statement for their kind is running wait for the
next one, which hands out up to that many tasks in id order, one per claim in arrival
order, and commits once: group commit at the queue, with no added wait (the first claim
of a quiet moment runs at once).

The claim's preference is kept: no claimer gets a task that any claimer of its batch
(runner or host) failed before. A claim the batch could not serve gets None and takes
the one-by-one path (db/hot.claim), which explains an empty queue or a retry to come.
Heartbeats batch the same way by the columns they set; one that matched nothing (or
named a task twice in a batch) takes db/hot.heartbeat, which says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, Generic, TypeVar

from cloudbench.orchestrator.db import hot
from cloudbench.orchestrator.db.direct import DirectPostgres
from cloudbench.orchestrator.db.models import Task

logger = logging.getLogger(__name__)

# A bound on one statement's size; more waiting claims go to the next statement.
MAX_BATCH = 64


@dataclass(frozen=True)
class Kind:
    """The claim filters: claims batch together only when these are equal."""

    provider: str
    instance_type: str
    alias: str | None
    run_external_id: int | None


def limit_for(n: int) -> int:
    """A constant LIMIT of at least n: a bound LIMIT makes Postgres' cached generic plan
    assume a tenth of the table and sort it (measured: 3 ms a claim); powers of two keep
    the prepared statements per connection few."""
    return 1 << (n - 1).bit_length()


@lru_cache(maxsize=64)
def batch_sql(*, alias: bool, run: bool, limit: int) -> str:
    where = ["status = 'pending'", "provider = %(provider)s", "instance_type = %(type)s"]
    if alias:
        where.append("alias = %(alias)s")
    if run:
        where.append("run_id = (SELECT id FROM runs WHERE external_id = %(run)s)")
    # The preference: nobody in the batch gets a task that one of them failed before.
    where.append("(runner_id IS NULL OR runner_id <> ALL(%(runners)s::varchar[]))")
    where.append("(runner_host IS NULL OR runner_host <> ALL(%(known_hosts)s::varchar[]))")
    run_column = "(SELECT runs.{0} FROM runs WHERE runs.id = t.run_id)"
    # FOR UPDATE cannot sit beside a window function: lock in the inner query, number after.
    # The UPDATE does not test status again: the rows are locked since they were found
    # pending, and that test let the planner scan every pending row of the partial index
    # for each task (17 ms a claim on a 180,000-task table) instead of the primary key.
    # Only constant fragments are joined here; every value is a bound parameter.
    return f"""
WITH req AS (
    SELECT * FROM unnest(%(runners)s::varchar[], %(hosts)s::varchar[])
        WITH ORDINALITY AS r(runner_id, host, ord)
), cand AS (
    SELECT id, row_number() OVER (ORDER BY id) AS ord FROM (
        SELECT id FROM tasks WHERE {" AND ".join(where)}
        ORDER BY id LIMIT {int(limit)} FOR UPDATE SKIP LOCKED
    ) locked
)
UPDATE tasks AS t
SET status = 'claimed', runner_id = req.runner_id, runner_host = req.host,
    lease = t.lease + 1, claimed_at = clock_timestamp(), heartbeat_at = clock_timestamp(),
    heartbeat_status = 'boot'
FROM cand JOIN req ON req.ord = cand.ord
WHERE t.id = cand.id
RETURNING req.ord, t.id, t.provider, t.instance_type, t.alias, t.run_number, t.lease,
    {run_column.format("external_id")}, {run_column.format("ruby_version")},
    {run_column.format("benchmarks")}, t.attempt, {run_column.format("max_attempts")}
"""  # noqa: S608


async def claim_many(
    direct: DirectPostgres, kind: Kind, claimers: list[tuple[str, str | None]]
) -> dict[int, hot.Claimed]:
    """Tasks for claimers (runner_id, host), by position in the list; one commit."""
    runners = [r for r, _ in claimers]
    hosts = [h for _, h in claimers]
    params: dict[str, Any] = {
        "provider": kind.provider, "type": kind.instance_type, "alias": kind.alias,
        "run": kind.run_external_id, "runners": runners, "hosts": hosts,
        "known_hosts": [h for h in hosts if h is not None],
    }  # fmt: skip
    shape = {"alias": kind.alias is not None, "run": kind.run_external_id is not None}
    sql = batch_sql(**shape, limit=limit_for(len(claimers)))
    rows = await direct.all(sql, params)
    return {int(row[0]) - 1: hot.Claimed(*row[1:]) for row in rows}


# The columns a heartbeat may set, with their types for the unnest arrays.
_BEAT_TYPES = {
    "heartbeat_status": "varchar",
    "current_benchmark": "varchar",
    "progress_pct": "float8",
    "heartbeat_message": "text",
}
_TASK_COLUMNS = tuple(c.name for c in Task.__table__.c)
BEAT_NAMES = (*_TASK_COLUMNS, "run_external_id", "run_max_attempts")


@dataclass(frozen=True)
class BeatKind:
    """Heartbeats batch together when they set the same columns (hot.heartbeat_statement)."""

    fields: frozenset[str]
    running: bool
    lease: bool


@lru_cache(maxsize=64)
def beat_sql(kind: BeatKind) -> str:
    """hot.heartbeat_statement for many tasks: each row its own values, fenced the same."""
    columns = ["heartbeat_status", *sorted(kind.fields)]
    sets = ["heartbeat_at = clock_timestamp()", *(f"{c} = v.{c}" for c in columns)]
    if kind.running:
        sets += ["status = 'running'", "started_at = coalesce(t.started_at, clock_timestamp())"]
    arrays = ", ".join(f"%({c})s::{_BEAT_TYPES[c]}[]" for c in columns)
    where = "t.id = v.id AND t.runner_id = v.runner AND t.status IN ('claimed', 'running')"
    if kind.lease:
        where += " AND t.lease = v.lease"
    run_column = "(SELECT runs.{0} FROM runs WHERE runs.id = t.run_id)"
    returning = ", ".join(f"t.{c}" for c in _TASK_COLUMNS)
    return f"""
UPDATE tasks AS t SET {", ".join(sets)}
FROM unnest(%(ids)s::integer[], %(runners)s::varchar[], %(leases)s::integer[], {arrays})
    WITH ORDINALITY AS v(id, runner, lease, {", ".join(columns)}, ord)
WHERE {where}
RETURNING v.ord, {returning}, {run_column.format("external_id")},
    {run_column.format("max_attempts")}
"""  # noqa: S608


Beat = tuple[int, str, int | None, dict[str, Any]]  # task id, runner id, lease, fields


async def beat_many(
    direct: DirectPostgres, kind: BeatKind, beats: list[Beat]
) -> dict[int, dict[str, Any]]:
    """Record heartbeats (hot.heartbeat's fields each), one commit; rows by position."""
    params: dict[str, Any] = {
        "ids": [b[0] for b in beats], "runners": [b[1] for b in beats],
        "leases": [b[2] for b in beats],
    }  # fmt: skip
    for column in ("heartbeat_status", *kind.fields):
        params[column] = [_plain(b[3][column]) for b in beats]
    rows = await direct.all(beat_sql(kind), params)
    return {int(row[0]) - 1: dict(zip(BEAT_NAMES, row[1:], strict=True)) for row in rows}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


K = TypeVar("K")
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Batcher(Generic[K, T, R]):
    """Items of one kind that arrive while a statement for that kind runs wait for the
    next one; run(kind, items) answers them by position (missing: None)."""

    run: Callable[[K, list[T]], Awaitable[dict[int, R]]]
    waiting: dict[K, list[tuple[T, asyncio.Future[R | None]]]] = field(default_factory=dict)
    busy: set[K] = field(default_factory=set)
    # The drains in flight (asyncio keeps only weak references to tasks).
    drains: set[asyncio.Task[None]] = field(default_factory=set)

    async def submit(self, kind: K, item: T) -> R | None:
        future: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(kind, []).append((item, future))
        if kind not in self.busy:
            self.busy.add(kind)
            drain = asyncio.create_task(self._drain(kind))
            self.drains.add(drain)
            drain.add_done_callback(self.drains.discard)
        return await future

    async def _drain(self, kind: K) -> None:
        try:
            while queued := self.waiting.pop(kind, None):
                batch, rest = queued[:MAX_BATCH], queued[MAX_BATCH:]
                if rest:
                    self.waiting[kind] = rest
                await self._one(kind, batch)
        finally:
            self.busy.discard(kind)

    async def _one(self, kind: K, batch: list[tuple[T, asyncio.Future[R | None]]]) -> None:
        try:
            got = await self.run(kind, [item for item, _ in batch])
        except Exception as exc:  # every item of the batch sees the statement's error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for i, (_, future) in enumerate(batch):
            if not future.done():  # a claimer that left keeps its task: swept in time
                future.set_result(got.get(i))


def claim_batcher(direct: DirectPostgres) -> Batcher[Kind, tuple[str, str | None], hot.Claimed]:
    return Batcher(lambda kind, claimers: claim_many(direct, kind, claimers))


def beat_batcher(direct: DirectPostgres) -> Batcher[BeatKind, Beat, dict[str, Any]]:
    return Batcher(lambda kind, beats: beat_many(direct, kind, beats))

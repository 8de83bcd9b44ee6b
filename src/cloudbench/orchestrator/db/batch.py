"""Concurrent claims of one kind answered by one statement (Postgres, api/fast.py).

At 64 claiming runners a server process holds dozens of claims for the same instance
type at once; one UPDATE per claim pays a statement and a commit (a WAL flush) each.
Here the claims that arrive while a statement for their kind is running wait for the
next one, which hands out up to that many tasks in id order, one per claim in arrival
order, and commits once: group commit at the queue, with no added wait (the first claim
of a quiet moment runs at once).

The claim's preference is kept: no claimer gets a task that any claimer of its batch
(runner or host) failed before. A claim the batch could not serve gets None and takes
the one-by-one path (db/hot.claim), which explains an empty queue or a retry to come.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cloudbench.orchestrator.db import hot
from cloudbench.orchestrator.db.direct import DirectPostgres

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


@dataclass
class ClaimBatcher:
    direct: DirectPostgres
    waiting: dict[Kind, list[tuple[str, str | None, asyncio.Future[hot.Claimed | None]]]] = field(
        default_factory=dict
    )
    busy: set[Kind] = field(default_factory=set)
    # The drains in flight (asyncio keeps only weak references to tasks).
    drains: set[asyncio.Task[None]] = field(default_factory=set)

    async def claim(self, kind: Kind, runner_id: str, host: str | None) -> hot.Claimed | None:
        future: asyncio.Future[hot.Claimed | None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(kind, []).append((runner_id, host, future))
        if kind not in self.busy:
            self.busy.add(kind)
            drain = asyncio.create_task(self._drain(kind))
            self.drains.add(drain)
            drain.add_done_callback(self.drains.discard)
        return await future

    async def _drain(self, kind: Kind) -> None:
        try:
            while queued := self.waiting.pop(kind, None):
                batch, rest = queued[:MAX_BATCH], queued[MAX_BATCH:]
                if rest:
                    self.waiting[kind] = rest
                await self._run(kind, batch)
        finally:
            self.busy.discard(kind)

    async def _run(
        self, kind: Kind, batch: list[tuple[str, str | None, asyncio.Future[hot.Claimed | None]]]
    ) -> None:
        try:
            got = await claim_many(self.direct, kind, [(r, h) for r, h, _ in batch])
        except Exception as exc:  # every claimer of the batch sees the statement's error
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for i, (_, _, future) in enumerate(batch):
            if not future.done():  # a cancelled claimer's task stays claimed: swept later
                future.set_result(got.get(i))

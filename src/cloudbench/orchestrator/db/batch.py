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

The statements are db/statements.py's Postgres claim and heartbeat: the one-by-one path
sends the same text for one claimer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cloudbench.orchestrator.db import hot, statements
from cloudbench.orchestrator.db.direct import DirectPostgres
from cloudbench.orchestrator.db.statements import Beat, BeatKind, Claimer, Kind

logger = logging.getLogger(__name__)

# A bound on one statement's size; more waiting claims go to the next statement.
MAX_BATCH = 64


async def claim_many(
    direct: DirectPostgres, kind: Kind, claimers: list[Claimer]
) -> dict[int, hot.Claimed]:
    """Tasks for claimers (runner_id, host), by position in the list; one commit."""
    sql, params = statements.postgres_claim_call(kind, claimers, avoid=True)
    rows = await direct.all(sql, params)
    return {int(row[-1]) - 1: hot.Claimed(*row[:-1]) for row in rows}


async def beat_many(
    direct: DirectPostgres, kind: BeatKind, beats: list[Beat]
) -> dict[int, dict[str, Any]]:
    """Record heartbeats (hot.heartbeat's fields each), one commit; rows by position."""
    sql, params = statements.postgres_heartbeat_call(kind, beats)
    rows = await direct.all(sql, params)
    names = statements.BEAT_NAMES
    return {int(row[-1]) - 1: dict(zip(names, row[:-1], strict=True)) for row in rows}


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


def claim_batcher(direct: DirectPostgres) -> Batcher[Kind, Claimer, hot.Claimed]:
    return Batcher(lambda kind, claimers: claim_many(direct, kind, claimers))


def beat_batcher(direct: DirectPostgres) -> Batcher[BeatKind, Beat, dict[str, Any]]:
    return Batcher(lambda kind, beats: beat_many(direct, kind, beats))

"""Where the claim and heartbeat routes run db/hot.py: one transaction in a worker thread.

On SQLite the transaction is ``BEGIN IMMEDIATE`` (one writer at a time). On Postgres the
common claim and heartbeat never get here: api/fast.py answers them on the psycopg pool
(db/batch.py); this serves what falls through (an empty queue, a refusal, or every call
with ``CLOUDBENCH_DIRECT_HOT_PATH=false``) on the sync engine, whose pool the route
threads are sized to (docs/architecture.md, "Database connections").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine

T = TypeVar("T")


class ThreadedSync:
    """fn (statements without a commit of their own) inside one transaction, in a thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _run(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return fn(conn)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        return await run_in_threadpool(self._run, fn)

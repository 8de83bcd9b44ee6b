"""Where the hot paths (db/hot.py) run: an async Postgres connection, or SQLite in a thread.

Two real implementations: requests on Postgres must not hop to a thread pool (the hop,
not the SQL, was most of a heartbeat's cost), and SQLite has no async driver here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")


class HotExecutor(Protocol):
    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run fn (single-statement work, no commit of its own) on a connection."""
        ...

    async def dispose(self) -> None: ...


class AsyncPostgres:
    """psycopg's async connection under SQLAlchemy; fn runs via run_sync (a greenlet).

    AUTOCOMMIT here only: every hot-path write is one statement, atomic by itself, so
    BEGIN/COMMIT would be two extra round trips for nothing. Work that needs a
    multi-statement transaction (complete, fail, stop, the sweeper) uses the sync engine.
    """

    def __init__(self, url: str, *, pool_size: int) -> None:
        async_url = make_url(url).set(drivername="postgresql+psycopg_async")
        self.engine: AsyncEngine = create_async_engine(
            async_url,
            pool_size=pool_size,
            max_overflow=0,
            pool_recycle=1800,
            isolation_level="AUTOCOMMIT",
        )

    async def run(self, fn: Callable[[Connection], T]) -> T:
        async with self.engine.connect() as conn:
            return await conn.run_sync(fn)

    async def dispose(self) -> None:
        await self.engine.dispose()


class ThreadedSync:
    """SQLite: fn inside one BEGIN IMMEDIATE transaction, in the thread pool."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _run(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return fn(conn)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        return await run_in_threadpool(self._run, fn)

    async def dispose(self) -> None:
        return None


def make_executor(url: str, engine: Engine, *, pool_size: int) -> HotExecutor:
    if engine.dialect.name == "postgresql":
        return AsyncPostgres(url, pool_size=pool_size)
    return ThreadedSync(engine)

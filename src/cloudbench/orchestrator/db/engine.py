"""Engine and session factory for Postgres (production) and SQLite (embedded default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    # No pre-ping: it costs a round trip on every request's hot path. A connection that
    # died with the server fails one request, and SQLAlchemy then drops the whole pool.
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so every transaction can be IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: no read-then-upgrade deadlocks.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


class UnitOfWork:
    """Runs a hot-path db function (a sync ``Session`` callback that commits) from async code.

    Postgres: on psycopg's async connection through SQLAlchemy's greenlet bridge, so a
    request never waits for a thread-pool slot (with the pool, 256 concurrent requests
    queued for threads while the threads waited for connections), in autocommit mode:
    the callback must write with ONE statement. SQLite: its driver is blocking, so the
    callback runs in a worker thread inside a BEGIN IMMEDIATE transaction, as before.
    """

    def __init__(self, url: str, sync_factory: sessionmaker[Session], *, pool_size: int) -> None:
        self._sync_factory = sync_factory
        self.async_engine: AsyncEngine | None = None
        if make_url(url).get_backend_name() != "sqlite":
            # AUTOCOMMIT: every hot-path unit is one statement, atomic on its own, so the
            # BEGIN and COMMIT round trips buy nothing (commit() becomes a no-op).
            # No overflow: waiting for a pooled connection costs an await, whereas an
            # overflow connection is opened and closed per request under load.
            self.async_engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=0,
                pool_recycle=1800,
                isolation_level="AUTOCOMMIT",
            )
            self._async_factory = async_sessionmaker(self.async_engine, expire_on_commit=False)

    async def run(self, fn: Callable[[Session], T]) -> T:
        if self.async_engine is None:
            return await anyio.to_thread.run_sync(self._in_thread, fn)
        async with self._async_factory() as session:
            return await session.run_sync(fn)

    def _in_thread(self, fn: Callable[[Session], T]) -> T:
        with self._sync_factory() as session:
            return fn(session)

    async def dispose(self) -> None:
        if self.async_engine is not None:
            await self.async_engine.dispose()

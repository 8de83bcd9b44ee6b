"""The common case of claim and heartbeat on Postgres, on psycopg directly.

(Claims go through db/batch.py, which runs its statement here.)

db/hot.py builds the statements; here each is compiled once to SQL text and then runs
as one prepared statement on a pooled psycopg connection: no greenlet, no SQLAlchemy
result processing (the profile's largest share after FastAPI's). Only the common case
is answered here, a task handed out or a heartbeat that matched; anything else returns
None and the caller falls back to db/hot.py, which owns every refusal and message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Update
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.engine import make_url

from cloudbench.orchestrator.db import hot

_DIALECT = psycopg_dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Compiled:
    sql: str
    # The statement's own bound values (statuses, the LIMIT): the request adds the rest.
    fixed: dict[str, Any]
    names: tuple[str, ...]  # of the RETURNING columns


@lru_cache(maxsize=128)
def compiled(stmt: Update) -> Compiled:
    done = stmt.compile(dialect=_DIALECT)
    # An expanding IN would need SQLAlchemy at execution time: hot.py's statements have none.
    assert not done.post_compile_params, done.post_compile_params
    fixed = {
        name: value.value if isinstance(value, Enum) else value
        for name, value in done.params.items()
        if not name.startswith("p_")
    }
    return Compiled(done.string, fixed, tuple(str(c.key) for c in stmt.exported_columns))


class DirectPostgres:
    """A psycopg connection pool in autocommit mode: each hot statement is atomic alone."""

    def __init__(self, url: str, *, size: int) -> None:
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        self.pool = AsyncConnectionPool(
            conninfo,
            min_size=size,
            max_size=size,
            open=False,
            # prepare_threshold 0: prepared on first use, so the server parses it once.
            kwargs={"autocommit": True, "prepare_threshold": 0},
            name="hot",
        )

    async def open(self) -> None:
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    async def one(self, stmt: Update, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The statement's RETURNING row, or None when it matched nothing."""
        done = compiled(stmt)
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(done.sql, done.fixed | params, prepare=True)
            return await cur.fetchone()

    async def all(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(sql, params, prepare=True)
            return await cur.fetchall()


async def heartbeat(
    direct: DirectPostgres,
    *,
    task_id: int,
    runner_id: str,
    lease: int | None,
    fields: dict[str, Any],
) -> dict[str, Any] | None:
    """hot.heartbeat's UPDATE; None (nothing matched) leaves the why to hot.heartbeat."""
    stmt, params = hot.heartbeat_call("postgresql", task_id, runner_id, lease, fields)
    row = await direct.one(stmt, params)
    return None if row is None else dict(zip(compiled(stmt).names, row, strict=True))

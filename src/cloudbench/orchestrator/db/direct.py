"""A psycopg pool for the batched claim and heartbeat statements (db/batch.py).

No SQLAlchemy on this path: its greenlet, pool and result processing were the profile's
largest share after FastAPI's. Everything else keeps the engines in db/engine.py and
db/executor.py.
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url


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

    async def all(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(sql, params, prepare=True)
            return await cur.fetchall()

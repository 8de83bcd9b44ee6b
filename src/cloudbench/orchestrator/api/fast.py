"""Claim and heartbeat on Postgres without FastAPI's request machinery (issue #10).

Thousands of runner slots claim and heartbeat; FastAPI's routing, dependency solving and
middleware stack cost more per request than the SQL (py-spy: about half of a heartbeat's
CPU). This ASGI layer answers only the common case of those two routes: a runner token,
a JSON body that validates, and a statement that matched (a task handed out, a heartbeat
recorded). Everything else, from a bad body or another token to an empty queue or a
refused heartbeat, goes on to the FastAPI routes with the body replayed, so every other
answer, and every error message, still comes from one place. The response bytes are
built by the same functions the routes use (api/tasks.py).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import psycopg_pool
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudbench.orchestrator.api.deps import Role, role_for
from cloudbench.orchestrator.api.tasks import (
    claim_response,
    has_nul,
    heartbeat_fields,
    heartbeat_response,
)
from cloudbench.orchestrator.db import batch, direct, hot, statements
from cloudbench.orchestrator.db.statements import Beat, BeatKind, Claimer, Kind
from cloudbench.orchestrator.errors import DomainError
from cloudbench.protocol import (
    MAX_DB_INT,
    MAX_RUN_ID,
    ClaimRequest,
    HeartbeatRequest,
)

logger = logging.getLogger(__name__)

_CLAIM_IN_RUN = re.compile(r"/runs/([1-9][0-9]{0,18})/tasks/claim")
_HEARTBEAT = re.compile(r"/tasks/([1-9][0-9]{0,18})/heartbeat")
Handler = Callable[[bytes], Awaitable[bytes | None]]
ClaimBatcher = batch.Batcher[Kind, Claimer, hot.Claimed]
BeatBatcher = batch.Batcher[BeatKind, Beat, dict[str, Any]]


class HotRoutes:
    def __init__(self, app: ASGIApp, *, state: State, max_body: int) -> None:
        self.app, self.state, self.max_body = app, state, max_body
        # What this layer answered itself, by route (tests and diagnostics read it).
        self.served: Counter[str] = Counter()
        self._claims: Any = None
        self._beats: Any = None
        state.hot_routes = self

    def batchers(self, db: direct.DirectPostgres) -> tuple[ClaimBatcher, BeatBatcher]:
        if self._claims is None:  # made on first use: the pool opens in the lifespan
            self._claims, self._beats = batch.claim_batcher(db), batch.beat_batcher(db)
        return self._claims, self._beats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._handler(scope)
        if handler is None:
            await self.app(scope, receive, send)
            return
        chunks, complete = await _read_body(receive, self.max_body)
        answer = await self._answer(handler, _body_of(chunks)) if complete else None
        if answer is None:
            await self.app(scope, _replay(chunks, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _handler(self, scope: Scope) -> Handler | None:
        """The handler for a request this layer may answer, from method, path and headers."""
        db: direct.DirectPostgres | None = self.state.direct
        if scope["type"] != "http" or scope["method"] != "POST" or db is None:
            return None
        if not _json_runner_request(scope, self.state):
            return None
        path: str = scope["path"]
        if path == "/tasks/claim":
            return lambda body: self._claim(db, body, None)
        if (run_id := _id(_CLAIM_IN_RUN, path, MAX_RUN_ID)) is not None:
            return lambda body: self._claim(db, body, run_id)
        if (task_id := _id(_HEARTBEAT, path, MAX_DB_INT)) is not None:
            return lambda body: self._heartbeat(db, body, task_id)
        return None

    async def _answer(self, handler: Handler, body: bytes) -> bytes | None:
        try:
            return await handler(body)
        except ValueError:  # not JSON, not UTF-8, or a ValidationError
            return None  # FastAPI gives the 422 and its message
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            # The route retries on its own engine and answers 503 if the database is down.
            logger.warning("direct hot path unavailable: %s", exc.__class__.__name__)
            return None

    async def _claim(
        self, db: direct.DirectPostgres, body: bytes, run_id: int | None
    ) -> bytes | None:
        req = ClaimRequest.model_validate(json.loads(body))
        if has_nul(req):
            return None
        kind = Kind(req.provider, req.instance_type, req.alias, run_id)
        claimed = await self.batchers(db)[0].submit(kind, (req.runner_id, req.host))
        if claimed is None:
            return None  # nothing for this runner first time round: hot.claim says why
        self.served["claim"] += 1
        outcome = hot.ClaimOutcome(claimed)
        return claim_response(self.state.storage, self.state.settings, outcome)

    async def _heartbeat(
        self, db: direct.DirectPostgres, body: bytes, task_id: int
    ) -> bytes | None:
        req = HeartbeatRequest.model_validate(json.loads(body))
        fields = heartbeat_fields(req)
        kind = statements.beat_kind(fields, req.lease)
        row = await self.batchers(db)[1].submit(kind, (task_id, req.runner_id, req.lease, fields))
        if row is None:
            return None  # refused, or raced with its end: hot.heartbeat says which
        self.served["heartbeat"] += 1
        return heartbeat_response(row)


def _id(pattern: re.Pattern[str], path: str, maximum: int) -> int | None:
    found = pattern.fullmatch(path)
    return int(found[1]) if found and int(found[1]) <= maximum else None


def _json_runner_request(scope: Scope, state: State) -> bool:
    authorization = content_type = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"content-type":
            content_type = value
    if content_type.split(b";")[0].strip().lower() != b"application/json":
        return False
    try:
        return role_for(authorization.decode("latin-1"), state.settings) is Role.runner
    except DomainError:
        return False


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bool]:
    """The request's body messages; complete is False past the limit or on a disconnect."""
    chunks: list[Message] = []
    size = 0
    while True:
        message = await receive()
        chunks.append(message)
        if message["type"] != "http.request":
            return chunks, False
        size += len(message.get("body", b""))
        if size > limit:
            return chunks, False
        if not message.get("more_body", False):
            return chunks, True


def _replay(chunks: list[Message], receive: Receive) -> Receive:
    pending = list(chunks)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _body_of(chunks: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in chunks)

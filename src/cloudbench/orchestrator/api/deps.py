"""Shared route dependencies: the session and bearer-token auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from cloudbench.orchestrator.errors import Forbidden, Unauthorized
from cloudbench.orchestrator.settings import OrchestratorSettings
from cloudbench.orchestrator.storage.base import Storage
from cloudbench.protocol import MAX_DB_INT, MAX_RUN_ID


class Role(StrEnum):
    admin = "admin"
    runner = "runner"


# Closing gets its own threads: behind route work in the shared pool, a close waits for
# a thread while its session holds a connection that the routes in those threads wait
# for (256 concurrent requests wedged the server with "QueuePool limit reached").
_CLOSERS = anyio.CapacityLimiter(16)


async def get_session(request: Request) -> AsyncIterator[Session]:
    # Routes own the transaction: they commit; anything else rolls back on close.
    # Creating a session does no I/O; closing may (rollback), so only that leaves the loop.
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        if session.in_transaction():
            await anyio.to_thread.run_sync(session.close, limiter=_CLOSERS)
        else:  # the route closed it in its own thread (api/tasks.py): no I/O left
            session.close()


# The cheap dependencies are async on purpose: FastAPI runs sync ones in its thread
# pool, and a thread hop per dependency costs more than the check itself.


async def get_settings(request: Request) -> OrchestratorSettings:
    settings: OrchestratorSettings = request.app.state.settings
    return settings


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def role_of(request: Request) -> Role:
    return role_for(request.headers.get("authorization", ""), request.app.state.settings)


def role_for(header: str, settings: OrchestratorSettings) -> Role:
    """The role an Authorization header value grants (401 when none)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    # Compare against both tokens every time: constant time and no early exit.
    is_admin = settings.token_matches(token, "admin")
    is_runner = settings.token_matches(token, "runner")
    if is_admin:
        return Role.admin
    if is_runner:
        return Role.runner
    raise Unauthorized("invalid token")


async def any_token(request: Request) -> Role:
    return role_of(request)


async def require_admin(request: Request) -> Role:
    role = role_of(request)
    if role is not Role.admin:
        raise Forbidden("this endpoint needs the admin token")
    return role


async def require_runner(request: Request) -> Role:
    role = role_of(request)
    if role is not Role.runner:
        raise Forbidden("this endpoint needs the runner token")
    return role


# Path ids are bounded so an absurd number is a 422, not an integer overflow in the driver.
RunIdPath = Annotated[int, Path(ge=1, le=MAX_RUN_ID, description="The run id users see")]
TaskIdPath = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
RunIdQuery = Annotated[int | None, Query(ge=1, le=MAX_RUN_ID)]

SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[OrchestratorSettings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
AnyToken = Depends(any_token)
AdminToken = Depends(require_admin)
RunnerToken = Depends(require_runner)

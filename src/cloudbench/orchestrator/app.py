"""The FastAPI application: wiring, error mapping, background maintenance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloudbench import __version__
from cloudbench.orchestrator.api import dist, machines, runs, suite, tasks
from cloudbench.orchestrator.api.fast import HotRoutes
from cloudbench.orchestrator.api.responses import errors
from cloudbench.orchestrator.archive_worker import ArchiveWorker
from cloudbench.orchestrator.db.direct import DirectPostgres
from cloudbench.orchestrator.db.engine import make_engine, make_session_factory
from cloudbench.orchestrator.db.executor import ThreadedSync
from cloudbench.orchestrator.errors import DomainError
from cloudbench.orchestrator.limits import BodySizeLimit
from cloudbench.orchestrator.maintenance import maintenance_loop
from cloudbench.orchestrator.settings import OrchestratorSettings
from cloudbench.orchestrator.storage.base import StorageUnavailable
from cloudbench.orchestrator.storage.factory import storage_from_url
from cloudbench.protocol import SUITE_PREFIX, describe, error_body

logger = logging.getLogger(__name__)

# JSON bodies are small; anything bigger is a mistake or an attack. Uploads go to /storage.
MAX_JSON_BODY = 1 << 20


def create_app(settings: OrchestratorSettings, *, maintenance: bool = True) -> FastAPI:
    problems = settings.secret_problems()
    if problems:
        raise RuntimeError("; ".join(problems))
    url = settings.resolved_database_url()
    # One budget of db_pool_size connections per process, in two pools (docs/architecture.md,
    # "Database connections"): half for the direct claim/heartbeat path (api/fast.py), the
    # rest for the sync engine, which runs everything else.
    postgres = make_url(url).get_backend_name() == "postgresql"
    direct_size = max(1, settings.db_pool_size // 2) if postgres and settings.direct_hot_path else 0
    engine_size = max(1, settings.db_pool_size - direct_size)
    engine = make_engine(url, pool_size=engine_size)
    direct = DirectPostgres(url, size=direct_size) if direct_size else None
    # Route threads never outnumber the sync engine's connections (pool plus overflow): a
    # request then waits for a thread (in the event loop, no deadline) rather than for a
    # connection while holding a thread (30 s, then "QueuePool limit reached", a 500).
    # SQLite keeps anyio's default.
    threads = 2 * engine_size if postgres else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if threads is not None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        if direct is not None:
            await direct.open()
        loop_task = None
        if maintenance:
            loop_task = asyncio.create_task(
                maintenance_loop(
                    app.state.session_factory,
                    app.state.archiver.trigger,
                    settings.heartbeat_timeout,
                    settings.sweep_interval,
                )
            )
        yield
        app.state.archiver.shutdown()
        if loop_task is not None:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        if direct is not None:
            await direct.close()
        engine.dispose()

    # No /docs or /redoc: FastAPI's pages load unpinned scripts from a CDN on this
    # origin (the dashboard's). The contract is /openapi.json; docs/api.md says more.
    app = FastAPI(
        title="cloudbench orchestrator",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.hot = ThreadedSync(engine)
    app.state.direct = direct
    app.state.storage = storage_from_url(
        settings.resolved_storage_url(),
        public_url=public_url(settings),
        secret=settings.signing_key("storage"),
        max_bytes=settings.max_upload_bytes,
        region=settings.s3_region,
        endpoint_url=settings.s3_endpoint_url,
        public_endpoint_url=settings.s3_public_endpoint_url,
    )
    app.state.archiver = ArchiveWorker(app.state.session_factory, app.state.storage)
    app.add_middleware(
        BodySizeLimit, max_bytes=MAX_JSON_BODY, exempt_prefixes=("/storage/", SUITE_PREFIX)
    )
    # Outermost: the common claim/heartbeat never enters FastAPI (api/fast.py).
    app.add_middleware(HotRoutes, state=app.state, max_body=MAX_JSON_BODY)
    _install_error_handlers(app)
    _include_routers(app)
    return app


def public_url(settings: OrchestratorSettings) -> str:
    return (settings.public_url or "http://127.0.0.1:8000").rstrip("/")


def _include_routers(app: FastAPI) -> None:
    from cloudbench.orchestrator.api.storage import router as storage_router
    from cloudbench.orchestrator.dashboard import router as dashboard_router

    @app.get("/up", tags=["health"], responses=errors(503))
    def up(request: Request) -> dict[str, str]:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    app.include_router(runs.router)
    app.include_router(tasks.router)
    app.include_router(machines.router)
    app.include_router(storage_router)
    app.include_router(dist.router)
    app.include_router(suite.router)
    app.include_router(dashboard_router)


def _error(status: int, message: str, headers: Any = None) -> JSONResponse:
    return JSONResponse(error_body(message), status_code=status, headers=headers)


def _malformed_json(error: dict[str, Any]) -> str:
    """`request body is not valid JSON at character N: reason` (FastAPI said "1: JSON
    decode error", the character offset looking like a field)."""
    where = error.get("loc", ())[-1:]
    reason = str((error.get("ctx") or {}).get("error") or "JSON decode error")
    at = f" at character {where[0]}" if where and isinstance(where[0], int) else ""
    return f"request body is not valid JSON{at}: {reason}; send a JSON object"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain(_: Request, exc: DomainError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return _error(exc.status_code, exc.message, headers)

    @app.exception_handler(StorageUnavailable)
    async def storage_down(_: Request, exc: StorageUnavailable) -> JSONResponse:
        logger.warning("storage unavailable: %s", exc)
        return _error(503, f"result storage unavailable, retry later: {exc}")

    @app.exception_handler(OperationalError)
    async def database_down(_: Request, exc: OperationalError) -> JSONResponse:
        # A dropped or refused database connection (or SQLite busy) is the server's
        # transient state, not a bug: 503 so runners retry. The driver's text can name the
        # host and user, so only its class goes out; the log keeps the rest.
        logger.warning("database unavailable: %s", exc.orig.__class__.__name__)
        return _error(503, "database unavailable, retry later", {"Retry-After": "2"})

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        malformed = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if malformed is not None:
            return _error(400, _malformed_json(malformed))
        return _error(422, describe(exc.errors()) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

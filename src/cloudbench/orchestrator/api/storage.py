"""HTTP side of LocalStorage: ``PUT``/``GET /storage/{key}`` on HMAC-signed URLs.

Wiring in ``app.py``::

    from cloudbench.orchestrator.api.storage import storage_router

    app.state.storage = storage_from_url(...)   # LocalStorage or S3Storage
    app.include_router(storage_router())   # or the ready-made module-level ``router``

The router looks the storage up on ``request.app.state.storage`` per request; when that
is not a LocalStorage (S3 deployments) both routes answer 404. Authentication is the
signature alone (runner and master hold no other credential for these URLs), so the
router must not sit behind the runner-token dependency. Errors are JSON
``{"error": "..."}``: 400 bad key, 403 bad/expired/wrong-method signature, 404 missing,
412 already stored (every signed PUT is create-only, as on S3 with ``If-None-Match: *``),
413 too large.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from cloudbench.orchestrator.api.responses import errors
from cloudbench.orchestrator.storage.base import InvalidKeyError, ObjectExists
from cloudbench.orchestrator.storage.local import (
    AtomicWriter,
    LocalStorage,
    SignatureError,
    TooLargeError,
)
from cloudbench.protocol import error_body

logger = logging.getLogger(__name__)

# Batch request chunks before handing them to a worker thread: fewer thread hops,
# still bounded memory.
_WRITE_BATCH = 1 << 20
# Decoded by the server before routing, these would silently turn into separators.
_ENCODED_FORBIDDEN = (b"%2f", b"%5c", b"%00")

StorageGetter = Callable[[Request], LocalStorage | None]


def storage_from_app(request: Request) -> LocalStorage | None:
    storage = getattr(request.app.state, "storage", None)
    return storage if isinstance(storage, LocalStorage) else None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(error_body(message), status_code=status)


def _authorize(storage: LocalStorage, request: Request, key: str) -> JSONResponse | None:
    """None when the request may proceed, else the error response to send."""
    raw_path = request.scope.get("raw_path") or b""
    if any(token in raw_path.lower() for token in _ENCODED_FORBIDDEN):
        return _error(400, "encoded separator or NUL in key")
    params = request.query_params
    try:
        storage.path_for(key)
        storage.verify(
            request.method,
            key,
            signed_method=params.get("method"),
            expires=params.get("expires"),
            sig=params.get("sig"),
        )
    except InvalidKeyError as exc:
        return _error(400, str(exc))
    except SignatureError as exc:
        return _error(403, str(exc))
    return None


async def _receive(storage: LocalStorage, key: str, request: Request) -> int:
    writer: AtomicWriter = await to_thread.run_sync(
        partial(storage.begin_write, key, create_only=True)
    )
    try:
        total = 0
        pending = bytearray()
        async for chunk in request.stream():
            total += len(chunk)
            if total > storage.max_bytes:
                raise TooLargeError(f"object larger than {storage.max_bytes} bytes")
            pending += chunk
            if len(pending) >= _WRITE_BATCH:
                await to_thread.run_sync(writer.write, bytes(pending))
                pending.clear()
        await to_thread.run_sync(writer.write, bytes(pending))
        return await to_thread.run_sync(writer.commit)
    except BaseException:
        await to_thread.run_sync(writer.abort)
        raise


def storage_router(get_storage: StorageGetter = storage_from_app) -> APIRouter:
    router = APIRouter(tags=["storage"], responses=errors(400, 403, 404, 412, 413, 503))

    def _storage(request: Request) -> LocalStorage | JSONResponse:
        storage = get_storage(request)
        return storage if storage is not None else _error(404, "local storage is not enabled")

    @router.put("/storage/{key:path}")
    async def put_object(key: str, request: Request) -> Response:
        storage = _storage(request)
        if isinstance(storage, JSONResponse):
            return storage
        if (denied := _authorize(storage, request, key)) is not None:
            return denied
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > storage.max_bytes:
            return _error(413, f"object larger than {storage.max_bytes} bytes")
        try:
            size = await _receive(storage, key, request)
        except TooLargeError as exc:
            return _error(413, str(exc))
        except ObjectExists as exc:
            return _error(412, f"{exc}; stored objects are never replaced")
        except ClientDisconnect:
            # The runner will retry with its URL; nothing was stored, nothing to log loudly.
            logger.info("upload of %s aborted: client disconnected", key)
            return _error(400, "client disconnected before the upload finished")
        logger.info("stored %s (%d bytes) via signed PUT", key, size)
        return JSONResponse({"key": key, "size": size}, status_code=200)

    @router.get("/storage/{key:path}")
    async def get_object(key: str, request: Request) -> Response:
        storage = _storage(request)
        if isinstance(storage, JSONResponse):
            return storage
        if (denied := _authorize(storage, request, key)) is not None:
            return denied
        path = storage.path_for(key)
        if not await to_thread.run_sync(path.is_file):
            return _error(404, f"no object {key!r}")
        media = "application/gzip" if key.endswith(".gz") else "application/octet-stream"
        return FileResponse(path, media_type=media)

    return router


# The default instance, reading ``request.app.state.storage``.
router = storage_router()

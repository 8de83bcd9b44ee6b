"""`PUT/GET /ruby-bench/{run_id}`: the ruby-bench suite the master ships with a run.

The master (admin token) stores the packed suite with the run and the orchestrator
records its sha256; runners (any token) that cannot read the run's bucket, Azure VMs,
download it here and check it against the sha256 their boot data carries. The body is
bounded by MAX_SUITE_BYTES (the JSON API's cap does not apply under SUITE_PREFIX).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from cloudbench.orchestrator.api.deps import (
    AdminToken,
    AnyToken,
    RunIdPath,
    SessionDep,
    StorageDep,
)
from cloudbench.orchestrator.api.responses import errors
from cloudbench.orchestrator.db import suite as db_suite
from cloudbench.orchestrator.db.runs import require_run
from cloudbench.orchestrator.errors import BadRequest, PayloadTooLarge
from cloudbench.protocol import (
    MAX_SUITE_BYTES,
    SHA256_PATTERN,
    SUITE_PREFIX,
    SUITE_SHA256_HEADER,
    SuiteStored,
)

logger = logging.getLogger(__name__)
router = APIRouter(tags=["ruby-bench"], responses=errors(400, 401, 403, 404, 413, 422))
Sha256Query = Annotated[
    str, Query(pattern=SHA256_PATTERN, description="The body's sha256, 64 lowercase hex digits")
]
_TOO_LARGE = f"body: the packed suite is larger than {MAX_SUITE_BYTES} bytes"


@router.put(SUITE_PREFIX + "{run_id}", response_model=SuiteStored, dependencies=[AdminToken])
async def put_suite(
    run_id: RunIdPath,
    sha256: Sha256Query,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
) -> SuiteStored:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_SUITE_BYTES:
        raise PayloadTooLarge(_TOO_LARGE)
    await to_thread.run_sync(lambda: require_run(session=session, external_id=run_id))
    with tempfile.TemporaryDirectory(prefix="cloudbench-suite-") as tmp:
        path = Path(tmp) / "ruby-bench.tar.gz"
        size, digest = await _receive(request, path)
        if not _gzip(path):
            raise BadRequest("body: not a .tar.gz (send the packed ruby-bench suite)")
        if digest != sha256:
            raise BadRequest(f"sha256: the body's sha256 is {digest}, not {sha256}")
        key = db_suite.suite_key(run_id)
        await to_thread.run_sync(storage.put_file, key, path)

    def record() -> None:
        db_suite.record_suite(session=session, external_id=run_id, sha256=digest)
        session.commit()

    await to_thread.run_sync(record)
    logger.info("run %d: stored the ruby-bench suite (%d bytes, sha256 %s)", run_id, size, digest)
    return SuiteStored(run_id=run_id, sha256=digest, size=size)


async def _receive(request: Request, path: Path) -> tuple[int, str]:
    """The body into `path`, bounded; its size and sha256."""
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_SUITE_BYTES:
                    raise PayloadTooLarge(_TOO_LARGE)
                digest.update(chunk)
                out.write(chunk)
    except ClientDisconnect:
        raise BadRequest("body: the client disconnected before the upload finished") from None
    return size, digest.hexdigest()


def _gzip(path: Path) -> bool:
    with path.open("rb") as body:
        return body.read(2) == b"\x1f\x8b"


@router.get(SUITE_PREFIX + "{run_id}", dependencies=[AnyToken])
def get_suite(run_id: RunIdPath, session: SessionDep, storage: StorageDep) -> StreamingResponse:
    """The stored suite, its sha256 in the SUITE_SHA256_HEADER header."""
    sha256 = db_suite.suite_sha256(session=session, external_id=run_id)
    session.close()
    return StreamingResponse(
        storage.iter_bytes(db_suite.suite_key(run_id)),
        media_type="application/gzip",
        headers={SUITE_SHA256_HEADER: sha256},
    )

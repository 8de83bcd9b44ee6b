"""Is an uploaded result a cloudbench result? Checked at `/complete`, before it counts.

`/complete` used to check only that the object existed, so a run whose every tarball
was garbage reported every task completed. A result must be gzip and tar end to end
(CRC included), with safe, non-sparse members, hold `output.json` and `metadata.json`
at its top, both JSON objects, and expand to no more than the archive builder takes.
"""

from __future__ import annotations

import json
import tarfile
from typing import IO

from sqlalchemy.orm import Session

from cloudbench.orchestrator.db.models import Run, Task
from cloudbench.orchestrator.storage.base import Storage, result_key
from cloudbench.platform.tarsafe import (
    CORRUPT_ERRORS,
    UnsafeArchiveError,
    member_name,
    open_tar,
)
from cloudbench.protocol import TaskStatus

REQUIRED = ("output.json", "metadata.json")
# The archive builder's per-task cap (archive.build_archive's max_task_bytes).
MAX_RESULT_BYTES = 4 << 30
# Parsed in memory to check they are JSON; a real one is a few MB at most.
MAX_JSON_BYTES = 64 << 20


def task_result_problem(session: Session, storage: Storage, task: Task, key: str) -> str | None:
    """`result_problem` for an active task's own key; None otherwise (an identical retry,
    a wrong key or a lost task are decided under the run lock)."""
    if task.status not in (TaskStatus.claimed, TaskStatus.running):
        return None
    run = session.get(Run, task.run_id)
    assert run is not None
    if key != result_key(run.external_id, task.id, lease=task.lease):
        return None
    return result_problem(storage, key)


def result_problem(storage: Storage, key: str) -> str | None:
    """Why the object at `key` is not a usable result, or None (also when it is missing:
    the caller reports that with its own message)."""
    try:
        with storage.open_read(key) as raw:
            missing = _read(raw)
    except FileNotFoundError:
        return None
    except UnsafeArchiveError as exc:
        return f"result refused: {exc}"
    except (*CORRUPT_ERRORS, OSError) as exc:
        return f"result is not a gzip-compressed tar: {type(exc).__name__}: {exc}"
    return f"result has no {' and no '.join(missing)}" if missing else None


def _read(raw: IO[bytes]) -> list[str]:
    found: set[str] = set()
    written = 0
    with open_tar(raw) as tar:
        for info in tar:
            name = member_name(info)
            if name is None or not info.isfile():
                continue
            written += info.size
            if written > MAX_RESULT_BYTES:
                raise UnsafeArchiveError(f"expands beyond {MAX_RESULT_BYTES} bytes")
            if name in REQUIRED:
                _check_json(tar, info, name)
                found.add(name)
    return [name for name in REQUIRED if name not in found]


def _check_json(tar: tarfile.TarFile, info: tarfile.TarInfo, name: str) -> None:
    if info.size > MAX_JSON_BYTES:
        return  # too big to parse here; the report reads it
    data = tar.extractfile(info)
    assert data is not None  # a regular file
    try:
        parsed = json.loads(data.read())
    except ValueError as exc:
        raise UnsafeArchiveError(f"{name} is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise UnsafeArchiveError(f"{name} is not a JSON object")

"""The per-run results archive: every task's files plus a manifest, in one tar.gz.

DB-free: the caller turns Task rows into ArchiveTask values and records the result.
Everything streams: each runner tarball is read from storage once, its members are
spooled (bounded memory, disk beyond that) so a corrupt or unsafe tarball can be
rejected as a whole, and the output is written through gzip to a temp file that is then
handed to ``storage.put_file``.

Layout (no wrapper directory)::

    manifest.json
    <alias-or-instance_type>-<task_id>/output.txt|output.json|output.csv|metadata.json
    <alias-or-instance_type>-<task_id>/error.txt   (+ error tarball files) for the rest
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cloudbench.orchestrator.storage.base import Storage, archive_key
from cloudbench.orchestrator.tarwriter import TarStreamWriter
from cloudbench.orchestrator.threaded_gzip import ThreadedGzipWriter
from cloudbench.platform.tarsafe import (
    BoundedTarInfo,
    UnsafeArchiveError,
    member_name,
    safe_extract,
)
from cloudbench.protocol import (
    MANIFEST_NAME,
    ErrorType,
    Manifest,
    ManifestError,
    ManifestTask,
    TaskStatus,
)

__all__ = [
    "ArchiveResult",
    "ArchiveTask",
    "UnsafeArchiveError",
    "build_archive",
    "safe_extract",
    "task_directory",
]

logger = logging.getLogger(__name__)

# Per task tarball: beyond this, members go to disk instead of memory.
_SPOOL_MEMORY = 8 << 20
_COPY_CHUNK = 1 << 20
# Member bookkeeping is held in memory; a runner writes a handful of files.
_MAX_MEMBERS = 10_000
_CORRUPT = (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ArchiveTask:
    task_id: int
    provider: str
    instance_type: str
    alias: str | None
    run_number: int
    status: TaskStatus
    error_type: ErrorType | None = None
    error_message: str | None = None
    result_key: str | None = None
    error_key: str | None = None
    attempt: int = 1
    # Every ended attempt as in GET /runs/{id}/tasks (JSON-ready dicts).
    attempts: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ArchiveResult:
    key: str
    size_bytes: int
    tasks: int
    tasks_with_problems: int


@dataclass
class _Entry:
    """One task's manifest record, filled in while its files are written."""

    task: ArchiveTask
    directory: str
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def manifest_task(self) -> ManifestTask:
        task = self.task
        error = None
        if task.status != TaskStatus.completed:
            error = ManifestError(type=task.error_type, message=task.error_message)
        return ManifestTask(
            task_id=task.task_id,
            provider=task.provider,
            instance_type=task.instance_type,
            alias=task.alias,
            run_number=task.run_number,
            status=task.status,
            attempt=task.attempt,
            attempts=list(task.attempts),
            directory=self.directory,
            error=error,
            files=sorted(self.files),
            problems=self.problems,
        )


@dataclass(frozen=True)
class _Spooled:
    name: str
    offset: int
    size: int
    mtime: int


def task_directory(task: ArchiveTask) -> str:
    """``<alias-or-instance_type>-<task_id>`` with anything path-like replaced."""
    label = _UNSAFE_NAME.sub("_", task.alias or task.instance_type).strip("._-")[:100]
    return f"{label or 'task'}-{task.task_id}"


def _error_text(task: ArchiveTask) -> bytes:
    return (
        f"status: {task.status}\n"
        f"error_type: {task.error_type or 'unknown'}\n\n"
        f"{task.error_message or ''}\n"
    ).encode()


class _ArchiveWriter:
    def __init__(self, out: TarStreamWriter, storage: Storage, workdir: Path, limit: int) -> None:
        self.out = out
        self.storage = storage
        self.workdir = workdir
        self.limit = limit
        self.now = int(time.time())  # float mtimes would cost a PAX header each

    def add_bytes(self, name: str, data: bytes) -> None:
        self.out.add_bytes(name, data, self.now)

    def add_task(self, task: ArchiveTask) -> _Entry:
        entry = _Entry(task, task_directory(task))
        self.out.add_dir(entry.directory, self.now)
        if task.status == TaskStatus.completed:
            if task.result_key:
                self._add_tarball(entry, "result", task.result_key, reserved=set())
            else:
                entry.problems.append("completed task has no result key")
            return entry
        self.add_bytes(f"{entry.directory}/error.txt", _error_text(task))
        entry.files.append("error.txt")
        if task.error_key:
            self._add_tarball(entry, "error", task.error_key, reserved={"error.txt"})
        return entry

    def _add_tarball(self, entry: _Entry, kind: str, key: str, reserved: set[str]) -> None:
        with tempfile.SpooledTemporaryFile(_SPOOL_MEMORY, dir=str(self.workdir)) as spool:
            try:
                members = self._spool(key, spool, entry, reserved)
            except FileNotFoundError:
                members, problem = [], f"{kind} tarball missing: {key}"
            except UnsafeArchiveError as exc:
                members, problem = [], f"{kind} tarball refused: {exc}"
            except _CORRUPT as exc:
                members, problem = [], f"{kind} tarball corrupt: {type(exc).__name__}: {exc}"
            else:
                problem = f"{kind} tarball holds no files" if not members else ""
            for member in members:
                self._copy_member(entry, member, spool)
        if problem:
            logger.warning("task %d: %s", entry.task.task_id, problem)
            entry.problems.append(problem)

    def _copy_member(self, entry: _Entry, member: _Spooled, spool: IO[bytes]) -> None:
        spool.seek(member.offset)
        # add_stream copies exactly member.size bytes, so the spool needs no slicing.
        self.out.add_stream(f"{entry.directory}/{member.name}", spool, member.size, member.mtime)
        entry.files.append(member.name)

    def _spool(
        self, key: str, spool: IO[bytes], entry: _Entry, reserved: set[str]
    ) -> list[_Spooled]:
        """Read and validate the whole tarball before any of it reaches the archive."""
        members: list[_Spooled] = []
        skipped: list[str] = []  # reported only if the tarball is accepted as a whole
        seen = set(reserved)
        parents: set[str] = set()
        with self.storage.open_read(key) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            with tarfile.open(
                fileobj=gz, mode="r|", bufsize=1 << 16, tarinfo=BoundedTarInfo
            ) as tar:
                for count, info in enumerate(tar, 1):
                    # Every member counts (directories, duplicates): each costs memory.
                    if count > _MAX_MEMBERS:
                        raise UnsafeArchiveError(f"more than {_MAX_MEMBERS} members")
                    name = member_name(info)
                    if name is None or info.isdir():
                        continue
                    if name in seen:
                        skipped.append(f"skipped duplicate or reserved member {name!r}")
                        continue
                    # A file and a directory of one name cannot both be extracted.
                    prefixes = _parents(name)
                    if name in parents or not seen.isdisjoint(prefixes):
                        why = (
                            "it is also a directory" if name in parents else "its parent is a file"
                        )
                        skipped.append(f"skipped member {name!r}: {why}")
                        continue
                    seen.add(name)
                    parents.update(prefixes)
                    members.append(self._spool_member(tar, info, name, spool, self.limit))
            # Drain to the gzip trailer so a truncated or bit-flipped upload is caught by
            # the CRC check rather than accepted because the tar end marker came early.
            while gz.read(_COPY_CHUNK):
                pass
        entry.problems.extend(skipped)
        return members

    @staticmethod
    def _spool_member(
        tar: tarfile.TarFile, info: tarfile.TarInfo, name: str, spool: IO[bytes], limit: int
    ) -> _Spooled:
        offset = spool.tell()
        data = tar.extractfile(info)
        assert data is not None  # member_name() only lets regular files through here
        with data:
            while chunk := data.read(_COPY_CHUNK):
                spool.write(chunk)
                if spool.tell() > limit:
                    raise UnsafeArchiveError(f"expands beyond {limit} bytes")
        return _Spooled(name, offset, spool.tell() - offset, int(info.mtime))


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _manifest(run_id: int, removed_tasks: int, entries: list[_Entry]) -> bytes:
    manifest = Manifest(
        run_id=run_id,
        removed_tasks=removed_tasks,
        task_count=len(entries),
        tasks=[entry.manifest_task() for entry in entries],
    )
    return manifest.to_json()


def build_archive(
    *,
    storage: Storage,
    run_id: int,
    tasks: Iterable[ArchiveTask],
    removed_tasks: int,
    workdir: Path,
    compresslevel: int = 6,
    max_task_bytes: int = 4 << 30,
) -> ArchiveResult:
    """Build ``results/<run_id>/results.tar.gz`` and store it; returns what was built.

    Missing, corrupt and unsafe task tarballs are recorded in the manifest and never fail
    the archive; storage or disk failures (network, ENOSPC) propagate so the caller can
    mark the archive failed and retry.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=workdir, prefix=f"results-{run_id}-", suffix=".tar.gz")
    tmp = Path(tmp_name)
    try:
        entries = _write_archive(
            fd, storage, run_id, tasks, removed_tasks, workdir, compresslevel, max_task_bytes
        )
        size = tmp.stat().st_size
        key = archive_key(run_id)
        storage.put_file(key, tmp)
    finally:
        tmp.unlink(missing_ok=True)
    with_problems = sum(1 for entry in entries if entry.problems)
    logger.info(
        "run %d: archive %s built (%d tasks, %d with problems, %d bytes)",
        run_id,
        key,
        len(entries),
        with_problems,
        size,
    )
    return ArchiveResult(key, size, len(entries), with_problems)


def _write_archive(
    fd: int,
    storage: Storage,
    run_id: int,
    tasks: Iterable[ArchiveTask],
    removed_tasks: int,
    workdir: Path,
    compresslevel: int,
    max_task_bytes: int,
) -> list[_Entry]:
    # Our own gzip layer: tarfile's "w|gz" has no compresslevel (it uses 9, several times
    # slower than tar czf's 6) and compresses on the calling thread.
    with (
        os.fdopen(fd, "wb", buffering=_COPY_CHUNK) as raw,
        ThreadedGzipWriter(raw, compresslevel) as gz,
    ):
        out = TarStreamWriter(gz)
        writer = _ArchiveWriter(out, storage, workdir, max_task_bytes)
        entries = [writer.add_task(task) for task in tasks]
        writer.add_bytes(MANIFEST_NAME, _manifest(run_id, removed_tasks, entries))
        out.close()
    return entries

"""Machine-wide CPU leases: one benchmark per CPU across every cloudbench process.

Every slot that runs a benchmark holds an exclusive `flock` on `cpu<N>.lock` for each of
its CPUs, in a directory shared by every cloudbench process on the machine
(`CLOUDBENCH_CPU_LEASE_DIR`, default `/tmp/cloudbench-cpu-leases`: a fixed path, not
$TMPDIR, which may differ between processes). A lock the kernel
holds dies with its process, so a killed runner never leaves a CPU taken.

Waiters queue in arrival order (a ticket file each, itself flocked while its owner
lives): a slot takes its CPUs only when no earlier live ticket wants any of them, so
runners that share CPUs take turns task by task instead of one winning every race.

Each lease, once released, is appended to `history.jsonl` (who held which CPUs from when
to when); the holder of a lease still running is in its `cpu<N>.lock` file. Together
they are the machine-wide record a task reads back to learn what ran beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEASE_DIR_ENV = "CLOUDBENCH_CPU_LEASE_DIR"
DEFAULT_DIR = Path("/tmp/cloudbench-cpu-leases")  # noqa: S108 (shared on purpose)
HISTORY = "history.jsonl"
ROTATE_BYTES = 1 << 20  # history.jsonl moves to history.1.jsonl beyond this
POLL = 0.2


def lease_dir() -> Path:
    configured = os.environ.get(LEASE_DIR_ENV)
    return Path(configured) if configured else DEFAULT_DIR


def _ensure(path: Path) -> Path:
    for folder in (path, path / "queue"):
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # shared by every user of the machine
                folder.chmod(0o1777)
    return path


def _open(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's file: a read-only descriptor can still lock
        return os.open(path, os.O_RDONLY)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@dataclass
class Lease:
    """CPUs held by one slot for one task; `release` gives them back and records it."""

    root: Path
    cpus: tuple[int, ...]
    holder: dict[str, Any]
    since: float
    waited: float
    fds: list[int] = field(default_factory=list)

    def release(self) -> None:
        if not self.fds:
            return
        entry = {**self.holder, "cpus": list(self.cpus), "from": self.since, "to": time.time()}
        append_history(self.root, entry)
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the flock
        self.fds = []


class CpuLeases:
    def __init__(self, root: Path | None = None, poll: float = POLL) -> None:
        self.root = root or lease_dir()
        self.poll = poll

    def check(self) -> str | None:
        """Why this process cannot take leases here (None: it can), in one line."""
        try:
            _ensure(self.root)
            probe = self.root / "queue" / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
            os.close(os.open(probe, os.O_RDWR | os.O_CREAT, 0o600))
            probe.unlink()
        except OSError as exc:
            return (
                f"CPU lease directory {self.root} is not usable ({exc.strerror or exc}) — "
                f"set {LEASE_DIR_ENV} to a directory every cloudbench process on this machine "
                "can write"
            )
        return None

    def acquire(
        self, cpus: Iterable[int], holder: dict[str, Any], stopped: Callable[[], bool]
    ) -> Lease | None:
        """Wait in line for `cpus`; None when `stopped()` said so first."""
        wanted = tuple(sorted(set(cpus)))
        _ensure(self.root)
        started = time.monotonic()
        ticket, ticket_fd = self._enqueue(wanted, holder)
        try:
            while not stopped():
                if not self._earlier_waiters(ticket, wanted):
                    fds = self._lock_all(wanted)
                    if fds is not None:
                        now = time.time()
                        for fd in fds:
                            _write_holder(fd, {**holder, "cpus": list(wanted), "from": now})
                        waited = time.monotonic() - started
                        return Lease(self.root, wanted, holder, now, waited, fds)
                time.sleep(self.poll)
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                ticket.unlink()
            os.close(ticket_fd)

    def _enqueue(self, cpus: tuple[int, ...], holder: dict[str, Any]) -> tuple[Path, int]:
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.json"
        queue = self.root / "queue"
        temp = queue / f".{name}"
        fd = _open(temp)
        fcntl.flock(fd, fcntl.LOCK_EX)  # alive while locked; locked before it is visible
        os.write(fd, json.dumps({**holder, "cpus": list(cpus)}).encode())
        temp.rename(queue / name)
        return queue / name, fd

    def _earlier_waiters(self, ticket: Path, cpus: tuple[int, ...]) -> bool:
        for path in sorted(ticket.parent.iterdir()):
            if path.name >= ticket.name:
                return False
            if path.name.startswith(".") or not set(cpus) & set(_ticket_cpus(path)):
                continue
            if _alive(path):
                return True
        return False

    def _lock_all(self, cpus: tuple[int, ...]) -> list[int] | None:
        fds: list[int] = []
        for cpu in cpus:
            fd = _open(self.root / f"cpu{cpu}.lock")
            fds.append(fd)
            if not _try_lock(fd):
                for taken in fds:
                    os.close(taken)
                return None
        return fds

    def holders(self, cpus: Iterable[int]) -> list[dict[str, Any]]:
        """Leases being held now on any of `cpus` (as written by their holders)."""
        found: dict[str, dict[str, Any]] = {}
        for cpu in sorted(set(cpus)):
            with contextlib.suppress(OSError, ValueError):
                entry = _live_holder(self.root / f"cpu{cpu}.lock")
                if entry is not None:
                    found[str(entry.get("lease_id"))] = entry
        return list(found.values())

    def record(self, start: float, end: float) -> list[dict[str, Any]]:
        """Every lease that overlapped [start, end]: finished ones and those still held."""
        entries = [
            e
            for e in read_history(self.root)
            if e.get("from", 0.0) < end and e.get("to", 0.0) > start
        ]
        seen = {e.get("lease_id") for e in entries}
        cpus = {c for e in entries for c in e.get("cpus", [])}
        cpus |= {int(p.stem[3:]) for p in self.root.glob("cpu*.lock") if p.stem[3:].isdigit()}
        for held in self.holders(cpus):
            if held.get("lease_id") not in seen and held.get("from", end) < end:
                entries.append({**held, "to": None})
        return entries


def _write_holder(fd: int, entry: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(entry).encode(), 0)


def _live_holder(path: Path) -> dict[str, Any] | None:
    """The holder written in a CPU's lock file, if its lock is still held (a killed
    holder's text stays behind, but its lock died with it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        text = os.read(fd, 1 << 16).decode(errors="replace")
        if not text.strip() or _try_lock(fd):
            return None  # free (the lock taken here is dropped when fd closes)
        entry = json.loads(text)
        return entry if isinstance(entry, dict) else None
    finally:
        os.close(fd)


def _ticket_cpus(path: Path) -> list[int]:
    try:
        cpus = json.loads(path.read_text()).get("cpus", [])
    except (OSError, ValueError):
        return []  # being written or already gone: its owner checks again
    return [int(c) for c in cpus]


def _alive(path: Path) -> bool:
    """A ticket whose lock we can take belongs to a process that died: remove it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        if _try_lock(fd):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return False
        return True
    finally:
        os.close(fd)


def append_history(root: Path, entry: dict[str, Any]) -> None:
    _ensure(root)
    lock = _open(root / "history.lock")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = root / HISTORY
        with contextlib.suppress(OSError):
            if path.stat().st_size > ROTATE_BYTES:
                path.replace(root / "history.1.jsonl")
        fd = _open(path)
        try:
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, (json.dumps(entry) + "\n").encode())
        finally:
            os.close(fd)
    finally:
        os.close(lock)


def read_history(root: Path) -> list[dict[str, Any]]:
    entries = []
    for name in ("history.1.jsonl", HISTORY):
        with contextlib.suppress(OSError):
            for line in (root / name).read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if isinstance(entry, dict):
                        entries.append(entry)
    return entries

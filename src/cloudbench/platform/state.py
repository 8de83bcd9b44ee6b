"""Session records: which processes a `cloudbench run` started, so status and nuke find them.

One JSON file per session under ``<home>/sessions/`` (home: ``$CLOUDBENCH_HOME`` or
``$XDG_STATE_HOME/cloudbench``). Tokens for re-attaching live in the session's state
directory, mode 0600, never in the registry listing or on a command line.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import psutil
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)


def cloudbench_home() -> Path:
    if os.environ.get("CLOUDBENCH_HOME"):
        return Path(os.environ["CLOUDBENCH_HOME"])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "cloudbench"


def sessions_dir() -> Path:
    return cloudbench_home() / "sessions"


def default_state_dir() -> Path:
    return cloudbench_home() / "runs" / time.strftime("%Y%m%d-%H%M%S")


class ProcRecord(BaseModel):
    pid: int
    role: str  # master | orchestrator | runner
    create_time: float
    label: str = ""


class Session(BaseModel):
    id: str
    state_dir: str
    master_pid: int
    master_create_time: float
    run_id: int | None = None
    orchestrator_url: str | None = None
    # The certificate (PEM) the master pins for that orchestrator (a cloud deployment's).
    orchestrator_cert: str | None = None
    embedded: bool = False
    processes: list[ProcRecord] = Field(default_factory=list)

    @classmethod
    def new(cls, state_dir: Path) -> Session:
        me = psutil.Process()
        return cls(
            id=f"{time.strftime('%Y%m%d-%H%M%S')}-{me.pid}",
            state_dir=str(state_dir.resolve()),
            master_pid=me.pid,
            master_create_time=me.create_time(),
        )

    @property
    def path(self) -> Path:
        return sessions_dir() / f"{self.id}.json"

    def save(self) -> None:
        write_private(self.path, self.model_dump_json(indent=2))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def master_alive(self) -> bool:
        return is_ours(self.master_record()) is not None

    def master_record(self) -> ProcRecord:
        return ProcRecord(pid=self.master_pid, role="master", create_time=self.master_create_time)

    def replace_process(self, old_pid: int | None, record: ProcRecord) -> None:
        self.processes = [p for p in self.processes if p.pid != old_pid]
        self.processes.append(record)
        self.save()


def private_dir(path: Path) -> Path:
    """`mkdir -p` a folder that may hold secrets, then 0700 on it, and on the cloudbench
    home when it lies inside it (folders made by older versions were 0755)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    home = cloudbench_home()
    if path.resolve().is_relative_to(home.resolve()) and home.is_dir():
        home.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Atomic write, readable by the owner only (files may hold tokens), in a 0700 folder."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def load_sessions() -> list[Session]:
    sessions = []
    for path in sorted(sessions_dir().glob("*.json")):
        try:
            sessions.append(Session.model_validate_json(path.read_text()))
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable session file %s: %s", path, exc)
    return sessions


def find_session(run_id: int) -> Session | None:
    matches = [s for s in load_sessions() if s.run_id == run_id]
    return matches[-1] if matches else None


def record_for(proc: psutil.Process, role: str, label: str = "") -> ProcRecord:
    return ProcRecord(pid=proc.pid, role=role, create_time=proc.create_time(), label=label)


def live_process(pid: int, create_time: float) -> psutil.Process | None:
    """The process if it is still the one we recorded (PIDs get reused)."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.05:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def is_ours(record: ProcRecord) -> psutil.Process | None:
    """A recorded process that is alive, the same process, and a cloudbench command."""
    proc = live_process(record.pid, record.create_time)
    if proc is None:
        return None
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return None
    # Runners and orchestrators are `python -m cloudbench <role> ...`; a master's argv
    # is the `cloudbench` script (any path) and run/status.
    named = any("cloudbench" in arg for arg in cmdline)
    role_ok = record.role == "master" or record.role in cmdline
    return proc if named and role_ok else None


def dump_json(path: Path, data: object) -> None:
    write_private(path, json.dumps(data, indent=2))

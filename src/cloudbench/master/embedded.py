"""An embedded orchestrator: a child process on loopback with SQLite and local storage.

Tokens are generated here and reach the child through its environment only. If the
child dies, `ensure_alive` starts it again on the same port against the same database,
so runners (which retry) and the watch loop ride through a crash.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from cloudbench.platform.processes import clean_env, free_port, tail, terminate
from cloudbench.platform.state import Session, dump_json, private_dir, record_for

logger = logging.getLogger(__name__)

MAX_RESTARTS = 5
START_TIMEOUT = 60.0


class OrchestratorFailed(RuntimeError):
    pass


class EmbeddedOrchestrator:
    def __init__(self, state_dir: Path, session: Session, heartbeat_timeout: float) -> None:
        self.state_dir = state_dir
        self.session = session
        self.heartbeat_timeout = heartbeat_timeout
        self.admin_token = secrets.token_urlsafe(32)
        self.runner_token = secrets.token_urlsafe(32)
        self.port = free_port()
        self.log_path = state_dir / "orchestrator.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = clean_env(drop_all_cloudbench=True)
        # Sweep often enough that a short test timeout is noticed promptly.
        sweep = max(0.5, min(30.0, self.heartbeat_timeout / 3))
        env.update(
            CLOUDBENCH_STATE_DIR=str(self.state_dir),
            CLOUDBENCH_DATABASE_URL=f"sqlite:///{self.state_dir / 'orchestrator.sqlite3'}",
            CLOUDBENCH_STORAGE_URL=f"file://{self.state_dir / 'storage'}",
            CLOUDBENCH_ADMIN_TOKEN=self.admin_token,
            CLOUDBENCH_RUNNER_TOKEN=self.runner_token,
            CLOUDBENCH_HEARTBEAT_TIMEOUT=str(self.heartbeat_timeout),
            CLOUDBENCH_SWEEP_INTERVAL=str(sweep),
            CLOUDBENCH_PUBLIC_URL=self.url,
        )
        return env

    def start(self) -> None:
        # Holds the tokens and the orchestrator's database: owner only.
        private_dir(self.state_dir)
        # For `cloudbench status` re-attaching after this process died; owner-only.
        dump_json(
            self.state_dir / "tokens.json",
            {"admin_token": self.admin_token, "runner_token": self.runner_token},
        )
        self._spawn()
        self.session.embedded = True
        self.session.orchestrator_url = self.url
        self.session.save()

    def _spawn(self) -> None:
        old_pid = self.proc.pid if self.proc else None
        command = [sys.executable, "-m", "cloudbench", "orchestrator", "serve"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        # Own session: a Ctrl-C in the terminal reaches only the master, which decides.
        self.session.replace_process(
            old_pid, record_for(psutil.Process(self.proc.pid), "orchestrator", self.url)
        )
        self._wait_up()
        logger.info("embedded orchestrator up at %s (pid %d)", self.url, self.proc.pid)

    def _wait_up(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise OrchestratorFailed(
                    f"embedded orchestrator exited with {self.proc.returncode}; "
                    f"log {self.log_path}:\n{tail(self.log_path)}"
                )
            try:
                if httpx.get(f"{self.url}/up", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise OrchestratorFailed(f"embedded orchestrator not up after {START_TIMEOUT:.0f}s")

    def ensure_alive(self) -> None:
        """Restart a crashed orchestrator on the same port and database."""
        if self.proc is None or self.proc.poll() is None:
            return
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            raise OrchestratorFailed(f"embedded orchestrator crashed {MAX_RESTARTS} times")
        logger.warning(
            "embedded orchestrator exited (%s); restarting it (%d/%d)",
            self.proc.returncode,
            self.restarts,
            MAX_RESTARTS,
        )
        self._spawn()

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        terminate([psutil.Process(self.proc.pid)], grace)
        self.proc.wait()
        logger.info("embedded orchestrator stopped; database kept in %s", self.state_dir)

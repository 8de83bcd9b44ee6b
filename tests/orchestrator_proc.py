"""A real orchestrator process (`python -m cloudbench orchestrator serve`) for tests."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cloudbench.platform.tls import pinned_context
from tests.pg import free_port


@dataclass
class OrchestratorProcess:
    database_url: str
    state_dir: Path
    # None leaves a setting at `serve`'s own default (benchmarks start it as users do).
    heartbeat_timeout: float | None = 120.0
    sweep_interval: float | None = 30.0
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: int | None = 1
    log_level: str | None = "warning"
    port: int = field(default_factory=free_port)
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    runner_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    proc: subprocess.Popen[bytes] | None = None
    # (certificate, key) PEM files: `serve --tls-cert --tls-key`, HTTPS only.
    tls: tuple[Path, Path] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def verify(self) -> ssl.SSLContext | bool:
        return pinned_context(self.tls[0].read_text()) if self.tls else True

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "CLOUDBENCH_DATABASE_URL": self.database_url,
            "CLOUDBENCH_STATE_DIR": str(self.state_dir),
            "CLOUDBENCH_ADMIN_TOKEN": self.admin_token,
            "CLOUDBENCH_RUNNER_TOKEN": self.runner_token,
            "CLOUDBENCH_PUBLIC_URL": self.url,
        }
        if self.heartbeat_timeout is not None:
            env["CLOUDBENCH_HEARTBEAT_TIMEOUT"] = str(self.heartbeat_timeout)
        if self.sweep_interval is not None:
            env["CLOUDBENCH_SWEEP_INTERVAL"] = str(self.sweep_interval)
        return {**env, **self.extra_env}

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "cloudbench", "orchestrator", "serve"]
        argv += ["--port", str(self.port)]
        if self.workers is not None:
            argv += ["--workers", str(self.workers)]
        if self.log_level is not None:
            argv += ["--log-level", self.log_level]
        if self.tls is not None:
            argv += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        return argv

    def start(self, timeout: float = 60) -> OrchestratorProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.state_dir / f"orchestrator-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv(),
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: a kill takes its worker processes too (as a machine
            # going down would); SIGKILLing only the parent left them serving, orphaned.
            start_new_session=True,
        )
        self.wait_up(timeout)
        return self

    # Generous: on a loaded 2-core machine a fresh interpreter's imports alone take long.
    def wait_up(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"orchestrator exited: {self.log_tail()}")
            try:
                up = httpx.get(f"{self.url}/up", timeout=2, verify=self.verify())
                if up.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"orchestrator did not come up: {self.log_tail()}")

    def log_tail(self) -> str:
        logs = sorted(self.state_dir.glob("orchestrator-*.log"))
        return logs[-1].read_text()[-3000:] if logs else ""

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self._kill_group()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._kill_group()
            self.proc.wait()

    def _kill_group(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def client(self, token: str | None = None, role: str = "admin") -> httpx.Client:
        tok = token or (self.admin_token if role == "admin" else self.runner_token)
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {tok}"},
            timeout=30,
            verify=self.verify(),
        )

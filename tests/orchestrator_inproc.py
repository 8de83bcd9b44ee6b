"""The orchestrator served from inside the test process: same app, same HTTP, no fork.

`create_app` (the factory `serve` uses) behind uvicorn on a real loopback port, in a
thread. Lifespan runs as in `serve`: the maintenance loop sweeps, the archive worker
builds, and both stop on `stop()`. What this saves is the process: a `python -m
cloudbench orchestrator serve` costs seconds of imports and a migration per test on a
loaded 2-core machine. Tests that need a separate OS process (kill, restart, several
workers, races between processes, its log) ask conftest's `orchestrator_factory` for
`server="process"` (tests/orchestrator_proc.py) at the call site; nothing switches
silently.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx
import uvicorn

from cloudbench.orchestrator.app import create_app
from cloudbench.orchestrator.settings import OrchestratorSettings
from tests.orchestrator_proc import OrchestratorProcess

PREFIX = "CLOUDBENCH_"


def settings_from_env(env: dict[str, str]) -> OrchestratorSettings:
    """The settings `serve` would read from exactly this environment."""
    given = {k[len(PREFIX) :].lower(): v for k, v in env.items() if k.startswith(PREFIX)}
    return OrchestratorSettings.model_validate(given)


# Which server a test gets: the app in this process, or `serve` as its own OS process.
Server = Literal["in_process", "process"]


class OrchestratorFactory(Protocol):
    """conftest's `orchestrator_factory`: started for the test, stopped after it.

    options: OrchestratorProcess's fields (heartbeat_timeout, extra_env, tokens, …);
    `workers` other than 1 needs server="process"."""

    def __call__(
        self, database_url: str, *, server: Server, **options: Any
    ) -> OrchestratorProcess: ...


@dataclass
class InProcessOrchestrator(OrchestratorProcess):
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    log_handler: logging.Handler | None = None

    def start(self, timeout: float = 60) -> InProcessOrchestrator:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # The database is already at head (conftest's template); `serve` would migrate.
        app = create_app(settings_from_env(self.env()))
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,  # leave the test process's logging alone; records propagate
            log_level=self.log_level or "info",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
            ssl_certfile=self.tls[0] if self.tls else None,
            ssl_keyfile=self.tls[1] if self.tls else None,
        )
        self.server = uvicorn.Server(config)
        self._capture_log()
        self.thread = threading.Thread(
            target=self.server.run, name=f"orchestrator-{self.port}", daemon=True
        )
        self.thread.start()
        self.wait_up(timeout)
        return self

    def _capture_log(self) -> None:
        # Same file the process variant writes, so log_tail() works for diagnostics.
        # Every in-process server's records land in it (one logging tree per process).
        handler = logging.FileHandler(self.state_dir / f"orchestrator-{self.port}.log")
        handler.setLevel((self.log_level or "info").upper())
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        self.log_handler = handler

    def wait_up(self, timeout: float = 60) -> None:
        assert self.server is not None and self.thread is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started and self._answers():
                return
            if not self.thread.is_alive():
                self._release_log()
                raise RuntimeError(f"orchestrator did not start: {self.log_tail()}")
            time.sleep(0.02)
        raise RuntimeError(f"orchestrator did not come up: {self.log_tail()}")

    def _answers(self) -> bool:
        try:  # as the process variant waits: /up over HTTP, the database reachable
            up = httpx.get(f"{self.url}/up", timeout=5, verify=self.verify())
            return up.status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, kill: bool = False) -> None:
        if self.server is None or self.thread is None:
            return
        self.server.should_exit = True
        if kill:  # no SIGKILL in-process: the closest is skipping the graceful wait
            self.server.force_exit = True
        self.thread.join(timeout=30)
        if self.thread.is_alive():
            raise RuntimeError(f"in-process orchestrator on {self.port} did not stop")
        self.server = self.thread = None
        self._release_log()

    def _release_log(self) -> None:
        if self.log_handler is not None:
            logging.getLogger().removeHandler(self.log_handler)
            self.log_handler.close()
            self.log_handler = None

"""This machine's stage for the orchestrator (`POST /runs/{run_id}/machines`).

A cloud VM's boot script reports `boot` and `provision` with curl; from then on the
runner reports `provision` (fetching ruby-bench, waiting for the engine), `running`,
`finished` or `error`, and repeats its current stage every heartbeat interval so the
master can tell a live VM from a dead one. Each report carries the last log line; an
error carries the last lines. Only where the machine has an instance id and a run id
(CLOUDBENCH_INSTANCE_ID, set by the user-data): local runners are the master's own
processes and need none of this.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import deque

import httpx

from cloudbench.platform.http import ApiError, Transient
from cloudbench.protocol import MAX_LOG_TAIL, HeartbeatStatus, MachineReport
from cloudbench.runner.boot import BootClock
from cloudbench.runner.client import OrchestratorClient
from cloudbench.runner.settings import RunnerSettings

log = logging.getLogger(__name__)
TAIL_LINES = 40


class _LastLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(__name__):
            self.lines.append(self.format(record).splitlines()[0][:500])


class MachineReporter:
    def __init__(
        self,
        settings: RunnerSettings,
        client: OrchestratorClient | None,
        boot: BootClock | None = None,
    ) -> None:
        self.settings, self.client = settings, client
        self.boot = boot
        self.enabled = bool(settings.instance_id) and settings.run_id is not None
        self.enabled = self.enabled and client is not None
        self.stage = HeartbeatStatus.provision
        self._tail = _LastLines()
        self._stop = threading.Event()
        # Held across each report's request too: reports reach the orchestrator in order,
        # and none follows the final one (a keep-alive sent just after it replaced the
        # final cause with the last log line).
        self._lock = threading.Lock()
        self._final = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.enabled:
            return
        logging.getLogger().addHandler(self._tail)
        self.report(HeartbeatStatus.provision, "runner: starting")
        self._thread = threading.Thread(target=self._keep_alive, name="machine-report", daemon=True)
        self._thread.start()

    def report(
        self, stage: HeartbeatStatus, message: str | None = None, final: bool = False
    ) -> None:
        """Send the stage now; never raises (a report is information, not work)."""
        if not self.enabled or self.client is None:
            return
        with self._lock:
            if self._final:
                return
            self._final = final
            self.stage = stage
            line = message or (self._tail.lines[-1] if self._tail.lines else None)
            tail = "\n".join(self._tail.lines)[-MAX_LOG_TAIL:] if final else None
            body = MachineReport(
                instance_id=str(self.settings.instance_id),
                provider=self.settings.provider,
                instance_type=self.settings.resolved_instance_type,
                alias=self.settings.alias,
                stage=stage,
                message=(line or "")[:2000] or None,
                log_tail=tail or None,
                host=socket.gethostname()[:200] or None,
                stages=self.boot.stages() if self.boot else None,
            )
            try:
                run_id = int(self.settings.run_id or 0)
                self.client.report_machine(run_id, body, give_up_after=60.0 if final else 5.0)
                return
            except (httpx.HTTPError, Transient, ApiError) as exc:
                failed = exc
        log.warning("cannot report stage %s to the orchestrator: %s", stage, failed)

    def stage_changed(self, stage: HeartbeatStatus, message: str) -> None:
        """A slot's step (uploading, back to running): reported when the stage changes."""
        if self.enabled and stage != self.stage:
            self.report(stage, message)

    def _keep_alive(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval):
            self.report(self.stage)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logging.getLogger().removeHandler(self._tail)

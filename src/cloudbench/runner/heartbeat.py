"""Heartbeats in their own thread, so a busy benchmark or a slow upload cannot starve them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from cloudbench.protocol import HeartbeatRequest, HeartbeatStatus
from cloudbench.runner.client import (
    OrchestratorClient,
    OrchestratorError,
    OrchestratorUnreachable,
    TaskLost,
)

log = logging.getLogger(__name__)


class Heartbeater:
    def __init__(
        self,
        client: OrchestratorClient,
        task_id: int,
        runner_id: str,
        lease: int,
        interval: float,
        on_lost: Callable[[], None],
        thread_name: str = "heartbeat",
    ) -> None:
        self.client, self.task_id, self.runner_id, self.lease = client, task_id, runner_id, lease
        self.interval = interval
        self.on_lost = on_lost
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._state = HeartbeatRequest(
            runner_id=runner_id, lease=lease, status=HeartbeatStatus.boot
        )
        self._thread = threading.Thread(target=self._loop, name=thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def update(
        self,
        status: HeartbeatStatus | None = None,
        benchmark: str | None = None,
        progress: float | None = None,
        message: str | None = None,
        now: bool = False,
    ) -> None:
        """Change what the next heartbeat says; `now` sends it without waiting the interval."""
        changes: dict[str, object] = {}
        if status is not None:
            changes["status"] = status
        if benchmark is not None:
            changes["current_benchmark"] = benchmark[:200]
        if progress is not None:
            changes["progress_pct"] = max(0.0, min(100.0, progress))
        if message is not None:
            changes["message"] = message[:2000]
        with self._lock:
            self._state = self._state.model_copy(update=changes)
        if now:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            with self._lock:
                request = self._state
            if not self._send(request):
                return
            self._wake.wait(self.interval)

    def _send(self, request: HeartbeatRequest) -> bool:
        """False when the task is no longer ours."""
        try:
            self.client.heartbeat(self.task_id, request)
            return True
        except TaskLost as exc:
            log.warning("task %d lost: %s", self.task_id, exc.detail)
        except OrchestratorUnreachable as exc:
            log.error("heartbeat for task %d: %s", self.task_id, exc)
            return True  # keep trying; the orchestrator decides when the task timed out
        except OrchestratorError as exc:
            # 403/404: this runner does not own the task (any more); same as a 409.
            log.warning("heartbeat for task %d refused: %s", self.task_id, exc)
        except Exception:
            # A bug here must not silently end the heartbeats of a running benchmark.
            log.exception("heartbeat for task %d failed unexpectedly; retrying", self.task_id)
            return True
        self.lost.set()
        self.on_lost()
        return False

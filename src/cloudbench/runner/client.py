"""HTTP client for the orchestrator's runner API, with retries and fencing."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx
from pydantic import BaseModel
from tenacity import RetryCallState

from cloudbench.platform.http import RETRYABLE, ApiClient, ApiError
from cloudbench.platform.tls import client_verify
from cloudbench.protocol import (
    ClaimRequest,
    ClaimResponse,
    CompleteRequest,
    FailRequest,
    HeartbeatRequest,
    MachineReport,
    PresignedUrls,
    UploadUrlsRequest,
)

log = logging.getLogger(__name__)


class OrchestratorError(ApiError):
    """A 4xx answer the runner cannot act on (bad token, unknown run, validation)."""


class TaskLost(OrchestratorError):
    """409: the task is no longer ours (timed out, cancelled, re-claimed)."""


class OrchestratorUnreachable(Exception):
    """The orchestrator stayed unreachable (or 5xx) for longer than the give-up setting."""


class OrchestratorClient(ApiClient):
    tls_fix = (
        "set CLOUDBENCH_TLS_CA_FILE to the orchestrator's certificate (cloud boot scripts "
        "write it to /opt/cloudbench/orchestrator.pem)"
    )

    def __init__(
        self,
        base_url: str,
        token: str,
        give_up_after: float = 600.0,
        timeout: float = 30.0,
        max_backoff: float = 30.0,
        ca_file: Path | None = None,
    ) -> None:
        # ca_file: trust that certificate alone, as the master does (platform/tls.py).
        verify = client_verify(ca_file.read_text() if ca_file else None)
        super().__init__(base_url, token, timeout, verify=verify)
        self.base_url = self.url
        self.give_up_after = give_up_after
        self.max_backoff = max_backoff

    def api_error(self, status: int, message: str) -> OrchestratorError:
        return TaskLost(status, message) if status == 409 else OrchestratorError(status, message)

    # ------------------------------------------------------------ API calls
    def claim(
        self,
        request: ClaimRequest,
        run_id: int | None = None,
        interrupt: threading.Event | None = None,
    ) -> ClaimResponse:
        """Claim a task; a set `interrupt` (SIGTERM) ends the retrying at once.

        Reports (complete/fail) take no interrupt: they must still go out on shutdown.
        """
        path = f"/runs/{run_id}/tasks/claim" if run_id is not None else "/tasks/claim"
        return ClaimResponse.model_validate(self._call(path, request, interrupt).json())

    def heartbeat(self, task_id: int, request: HeartbeatRequest) -> None:
        self._call(f"/tasks/{task_id}/heartbeat", request)

    def complete(self, task_id: int, request: CompleteRequest) -> None:
        self._call(f"/tasks/{task_id}/complete", request)

    def fail(self, task_id: int, request: FailRequest) -> None:
        self._call(f"/tasks/{task_id}/fail", request)

    def upload_urls(self, task_id: int, request: UploadUrlsRequest) -> PresignedUrls:
        response = self._call(f"/tasks/{task_id}/upload_urls", request)
        return PresignedUrls.model_validate(response.json())

    def report_machine(self, run_id: int, report: MachineReport, give_up_after: float) -> None:
        """Retried briefly: the reporter repeats its stage, a report must not hold a task."""
        payload = report.model_dump(mode="json", exclude_none=True)
        self.send_retrying(
            "POST",
            f"/runs/{run_id}/machines",
            json=payload,
            give_up_after=give_up_after,
            max_backoff=5.0,
        )

    # ------------------------------------------------------------ plumbing
    def _call(
        self, path: str, body: BaseModel, interrupt: threading.Event | None = None
    ) -> httpx.Response:
        payload = body.model_dump(mode="json", exclude_none=True)
        try:
            return self.send_retrying(
                "POST",
                path,
                json=payload,
                give_up_after=self.give_up_after,
                max_backoff=self.max_backoff,
                min_backoff=0.5,
                interrupt=interrupt,
                on_retry=self._log_retry,
            )
        except RETRYABLE as exc:
            raise OrchestratorUnreachable(
                f"orchestrator at {self.base_url} unreachable or failing for "
                f"{self.give_up_after:.0f}s (POST {path}): {exc}"
            ) from exc

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "orchestrator call failed (attempt %d, %s); retrying in %.1fs",
            state.attempt_number,
            exc,
            delay,
        )

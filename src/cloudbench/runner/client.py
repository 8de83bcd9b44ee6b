"""HTTP client for the orchestrator's runner API (issue 2), with retries and fencing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential,
)
from tenacity.stop import stop_base

from cloudbench.protocol import (
    ClaimRequest,
    ClaimResponse,
    CompleteRequest,
    FailRequest,
    HeartbeatRequest,
    PresignedUrls,
    UploadUrlsRequest,
    error_message,
)

log = logging.getLogger(__name__)


class OrchestratorError(Exception):
    """A 4xx answer the runner cannot act on (bad token, unknown run, validation)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"orchestrator answered {status}: {detail}")
        self.status = status
        self.detail = detail


class TaskLost(OrchestratorError):
    """409: the task is no longer ours (timed out, cancelled, re-claimed)."""


class OrchestratorUnreachable(Exception):
    """The orchestrator stayed unreachable (or 5xx) for longer than the give-up setting."""


class _Transient(Exception):
    """Retryable: a 5xx answer."""


def _sleeper(interrupt: threading.Event | None) -> Callable[[float], None]:
    if interrupt is None:
        return time.sleep

    def sleep(seconds: float) -> None:
        interrupt.wait(seconds)

    return sleep


def _detail(response: httpx.Response) -> str:
    return error_message(response.content)


class OrchestratorClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        give_up_after: float = 600.0,
        timeout: float = 30.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.give_up_after = give_up_after
        self.max_backoff = max_backoff
        # The token travels only in this header, never in URLs or logs.
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OrchestratorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    # ------------------------------------------------------------ plumbing
    def _call(
        self, path: str, body: BaseModel, interrupt: threading.Event | None = None
    ) -> httpx.Response:
        payload = body.model_dump(mode="json", exclude_none=True)
        stop: stop_base = stop_after_delay(self.give_up_after)
        if interrupt is not None:
            stop = stop | stop_when_event_set(interrupt)
        retrying = Retrying(
            retry=retry_if_exception_type((httpx.TransportError, _Transient)),
            wait=wait_exponential(multiplier=0.5, min=0.5, max=self.max_backoff),
            stop=stop,
            # Sleeping on the event lets a signal cut a long backoff short.
            sleep=_sleeper(interrupt),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._post_once, path, payload)
        except (httpx.TransportError, _Transient) as exc:
            raise OrchestratorUnreachable(
                f"orchestrator at {self.base_url} unreachable or failing for "
                f"{self.give_up_after:.0f}s (POST {path}): {exc}"
            ) from exc

    def _post_once(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        response = self._http.post(path, json=payload)
        if response.status_code >= 500:
            raise _Transient(f"{response.status_code}: {_detail(response)}")
        if response.status_code == 409:
            raise TaskLost(409, _detail(response))
        if response.status_code >= 400:
            raise OrchestratorError(response.status_code, _detail(response))
        return response

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "orchestrator call failed (attempt %d, %s); retrying in %.1fs",
            state.attempt_number,
            exc,
            delay,
        )

"""The master's client for the orchestrator's admin API."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from cloudbench.protocol import RunCreated, RunOut, TaskList, error_message

logger = logging.getLogger(__name__)

CHUNK = 1 << 20


class ApiError(RuntimeError):
    """The orchestrator answered with an error that retrying will not fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"orchestrator said {status}: {message}")
        self.status = status


class _Transient(RuntimeError):
    pass


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | _Transient)


class OrchestratorClient:
    def __init__(self, url: str, admin_token: str, retry_for: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.retry_for = retry_for
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=httpx.Timeout(30.0, connect=5.0),
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OrchestratorClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 500:
            raise _Transient(f"{response.status_code} from {path}")
        if response.status_code >= 400:
            raise ApiError(response.status_code, _error_text(response))
        return response

    def _retrying(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # Retries only what may heal: connection trouble and 5xx (orchestrator starting).
        for attempt in Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_delay(self.retry_for),
            wait=wait_exponential(multiplier=0.2, max=5),
            before_sleep=before_sleep_log(logger, logging.DEBUG),
            reraise=True,
        ):
            with attempt:
                return self._request(method, path, **kwargs)
        raise AssertionError("unreachable")

    def create_run(self, body: dict[str, Any]) -> RunCreated:
        return RunCreated.model_validate(self._retrying("POST", "/runs", json=body).json())

    def get_run(self, run_id: int, retry: bool = False) -> RunOut:
        call = self._retrying if retry else self._request
        return RunOut.model_validate(call("GET", f"/runs/{run_id}").json())

    def tasks(self, run_id: int) -> TaskList:
        return TaskList.model_validate(self._retrying("GET", f"/runs/{run_id}/tasks").json())

    def stop_run(self, run_id: int) -> RunOut:
        return RunOut.model_validate(self._retrying("POST", f"/runs/{run_id}/stop").json())


def download(url: str, dest: Path) -> int:
    """Stream a presigned URL to dest (no Authorization header: the URL is the credential)."""
    size = 0
    with (
        httpx.stream("GET", url, timeout=httpx.Timeout(60.0, connect=10.0)) as response,
        dest.open("wb") as out,
    ):
        if response.status_code != 200:
            raise ApiError(response.status_code, f"archive download: {response.read()[:200]!r}")
        for chunk in response.iter_bytes(CHUNK):
            out.write(chunk)
            size += len(chunk)
    return size


def _error_text(response: httpx.Response) -> str:
    return error_message(response.content)

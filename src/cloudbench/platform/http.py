"""The client base for the orchestrator's API: one httpx client, tenacity retries, and
errors read from the ``{"error": …}`` envelope. The runner's and the master's clients
are thin subclasses that name the calls and what a 4xx means to them.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential,
)
from tenacity.stop import stop_base

from cloudbench.platform.tls import refusal
from cloudbench.protocol import error_message

logger = logging.getLogger(__name__)


class ApiError(RuntimeError):
    """A 4xx answer: retrying will not fix it."""

    def __init__(self, status: int, message: str, prefix: str = "orchestrator answered") -> None:
        super().__init__(f"{prefix} {status}: {message}")
        self.status = status
        self.detail = message


class Transient(RuntimeError):
    """A 5xx answer: the server may recover (restarting, database blip)."""


class TlsRefused(RuntimeError):
    """The server's certificate failed the check: retrying cannot fix it."""


RETRYABLE = (httpx.TransportError, Transient)


def _sleeper(interrupt: threading.Event | None) -> Callable[[float], None]:
    if interrupt is None:
        return time.sleep

    def sleep(seconds: float) -> None:
        # Sleeping on the event lets a signal cut a long backoff short.
        interrupt.wait(seconds)

    return sleep


class ApiClient:
    """Bearer-token JSON client; the token travels only in this header, never in URLs."""

    # What to do when the certificate check fails (one line; subclasses say it their way).
    tls_fix = "give this client the orchestrator's certificate"

    def __init__(
        self,
        url: str,
        token: str,
        timeout: httpx.Timeout | float,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        # `verify`: the deployment's pinned certificate (platform/tls.py) or system CAs.
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def api_error(self, status: int, message: str) -> ApiError:
        """The exception for a 4xx; subclasses pick finer ones (409: task lost)."""
        return ApiError(status, message)

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One attempt: 5xx raises Transient, 4xx `api_error`."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            line = refusal(exc, self.url, self.tls_fix)
            if line is not None:
                raise TlsRefused(line) from None
            raise
        if response.status_code >= 500:
            raise Transient(f"{response.status_code}: {error_message(response.content)}")
        if response.status_code >= 400:
            raise self.api_error(response.status_code, error_message(response.content))
        return response

    def send_retrying(
        self,
        method: str,
        path: str,
        *,
        give_up_after: float,
        max_backoff: float,
        min_backoff: float = 0.0,
        multiplier: float = 0.5,
        interrupt: threading.Event | None = None,
        on_retry: Callable[[RetryCallState], None] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """`send`, retried on connection trouble and 5xx until `give_up_after` seconds
        (or `interrupt` is set); the last error is raised."""
        stop: stop_base = stop_after_delay(give_up_after)
        if interrupt is not None:
            stop = stop | stop_when_event_set(interrupt)
        retrying = Retrying(
            retry=retry_if_exception_type(RETRYABLE),
            wait=wait_exponential(multiplier=multiplier, min=min_backoff, max=max_backoff),
            stop=stop,
            sleep=_sleeper(interrupt),
            before_sleep=on_retry or _log_debug,
            reraise=True,
        )
        return retrying(self.send, method, path, **kwargs)


def _log_debug(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    logger.debug("orchestrator call failed (attempt %d): %s; retrying", state.attempt_number, exc)

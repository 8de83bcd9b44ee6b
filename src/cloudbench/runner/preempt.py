"""The spot interruption notice (issue 27): a cloud VM's runner watches for it and, when it
comes, fails its running tasks `preempted` while there is still time, so that they are
retried on another machine, and stops claiming.

- AWS: IMDSv2 ``/latest/meta-data/spot/instance-action`` answers 404 until EC2 decides
  to reclaim the instance, then ``{"action": "terminate", "time": "..."}`` about two
  minutes ahead. EC2 advises polling every 5 s.
- Azure: Scheduled Events (``/metadata/scheduledevents``, header ``Metadata: true``)
  lists an event of type ``Preempt`` at least 30 s ahead for a Spot VM.

Only cloud runners watch (provider aws or azure); the endpoint follows the IMDS override
(AWS_EC2_METADATA_SERVICE_ENDPOINT), so a twin's or a test's metadata service is asked.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import httpx

from cloudbench.runner.imds import DEFAULT_ENDPOINT, ENDPOINT_ENV

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
AZURE_EVENTS = "/metadata/scheduledevents?api-version=2020-07-01"


def aws_notice(client: httpx.Client) -> str | None:
    """The instance-action notice as one line, or None when there is none."""
    token = client.put("/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    token.raise_for_status()
    resp = client.get(
        "/latest/meta-data/spot/instance-action",
        headers={"X-aws-ec2-metadata-token": token.text},
    )
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    try:
        body = resp.json()
        action, when = body.get("action"), body.get("time")
    except (ValueError, AttributeError):
        action, when = None, None
    return f"EC2 spot interruption notice: {action or 'terminate'} at {when or 'soon'}"


def azure_notice(client: httpx.Client) -> str | None:
    resp = client.get(AZURE_EVENTS, headers={"Metadata": "true"})
    resp.raise_for_status()
    for event in resp.json().get("Events") or []:
        if isinstance(event, dict) and event.get("EventType") == "Preempt":
            when = event.get("NotBefore") or "soon"
            return f"Azure Scheduled Events: Preempt (Spot eviction) not before {when}"
    return None


class InterruptionWatch:
    """Polls for the notice; calls `on_notice(line)` once, from its own thread."""

    def __init__(
        self,
        provider: str,
        on_notice: Callable[[str], None],
        endpoint: str | None = None,
        interval: float = POLL_SECONDS,
    ) -> None:
        self.provider = provider
        self.on_notice = on_notice
        self.base = (endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")
        self.interval = interval
        self.notice: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.provider in ("aws", "azure")

    def start(self) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._loop, name="preempt-watch", daemon=True)
            self._thread.start()

    def check(self) -> str | None:
        """One look; None without a notice (or when the service cannot be asked)."""
        read = aws_notice if self.provider == "aws" else azure_notice
        try:
            with httpx.Client(base_url=self.base, timeout=2.0) as client:
                return read(client)
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            if not self._warned:  # once: an unreachable service is no reason to stop
                log.warning("cannot read the interruption notice at %s: %s", self.base, exc)
                self._warned = True
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            notice = self.check()
            if notice:
                self.notice = notice
                log.warning("%s: failing running tasks as preempted", notice)
                self.on_notice(notice)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

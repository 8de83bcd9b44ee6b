"""Boot stages of this machine (issue 27): when it reached each, for metadata.json and the
orchestrator's machine row.

`instance_start` is the cloud's own word (EC2's identity document `pendingTime`, read with
the rest of the identity); `user_data_start`, `runner_installed` and `image_present`
arrive from the boot script as ``CLOUDBENCH_BOOT_<STAGE>`` (ISO times, UTC); the runner
adds `image_present` or `ruby_ready` (its first provisioned Ruby, by executor),
`first_claim` and `first_benchmark`. A local runner has no boot script: its user-data
start and runner install are the runner's own start.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from cloudbench.protocol import BOOT_STAGES

log = logging.getLogger(__name__)

ENV_PREFIX = "CLOUDBENCH_BOOT_"
FROM_SCRIPT = ("user_data_start", "runner_installed", "image_present")


def parse_time(value: str) -> datetime | None:
    """An ISO time (a trailing Z allowed); naive means UTC; None when it is not one."""
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


class BootClock:
    """Stage name → first time reached; thread-safe (every slot marks its first claim)."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self._stages: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self.on_new: Callable[[], None] = lambda: None  # e.g. report to the orchestrator

    @classmethod
    def at_start(
        cls, instance: Mapping[str, Any], environ: Mapping[str, str] = os.environ
    ) -> BootClock:
        """What is known when the runner starts: the cloud's and the boot script's times."""
        clock = cls()
        launched = instance.get("launched_at")
        if isinstance(launched, str) and (at := parse_time(launched)):
            clock.mark("instance_start", at)
        for name in FROM_SCRIPT:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw and (at := parse_time(raw)):
                clock.mark(name, at)
            elif raw:
                log.warning("%s%s=%r is not an ISO time: ignored", ENV_PREFIX, name.upper(), raw)
        now = clock._now()
        for name in ("user_data_start", "runner_installed"):  # local: the runner's start
            clock.mark(name, now)
        return clock

    def mark(self, name: str, at: datetime | None = None) -> bool:
        """Record `name` unless already recorded; True when it is new."""
        if name not in BOOT_STAGES:
            raise ValueError(f"unknown boot stage {name!r}")
        with self._lock:
            if name in self._stages:
                return False
            self._stages[name] = at or self._now()
        self.on_new()
        return True

    def stages(self) -> dict[str, datetime]:
        with self._lock:
            return dict(self._stages)

    def block(self) -> dict[str, Any]:
        """metadata.json's `boot`: stages in boot order, and user-data start → first benchmark."""
        found = self.stages()
        ordered = {n: _iso(found[n]) for n in BOOT_STAGES if n in found}
        start, first = found.get("user_data_start"), found.get("first_benchmark")
        seconds = round((first - start).total_seconds(), 3) if start and first else None
        return {"stages": ordered, "time_to_first_benchmark_s": seconds}

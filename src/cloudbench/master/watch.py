"""Following a run until it has ended and its archive is ready, and noticing when it cannot.

The master polls the orchestrator once a second; between polls it asks every provider
whether its runners still live. A run whose runners are all gone while work remains
would wait forever, so the watcher ends it with Stalled (or RunnersExited, naming the
instance type and the runner's last line). Cloud VMs are not our processes: their boot
reports (`GET /runs/{id}/machines`) go to the providers' `observe` each poll, which is
how a VM that never calls in, reports an error or falls silent is counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import httpx
from rich.console import Console

from cloudbench.master.client import OrchestratorClient
from cloudbench.master.embedded import EmbeddedOrchestrator
from cloudbench.master.progress import ProgressView
from cloudbench.master.providers import Provider
from cloudbench.master.providers.base import MachineRow
from cloudbench.platform.http import ApiError, Transient
from cloudbench.protocol import ArchiveState, RunOut, RunStatus

logger = logging.getLogger(__name__)

POLL = 1.0


class Stalled(RuntimeError):
    """No runner is left but the run still has work: it can never finish by itself."""


class RunnersExited(Stalled):
    """Every runner of an instance type failed while that type still has tasks."""

    def __init__(self, message: str, provider: str, alias: str) -> None:
        super().__init__(message)
        self.provider, self.alias = provider, alias


class RunWatcher:
    def __init__(
        self,
        console: Console,
        client: OrchestratorClient,
        providers: Sequence[Provider],
        embedded: EmbeddedOrchestrator | None,
        heartbeat_timeout: float,
    ) -> None:
        self.console, self.client, self.providers = console, client, providers
        self.embedded, self.heartbeat_timeout = embedded, heartbeat_timeout
        self._idle_since: float | None = None
        self._rows: list[MachineRow] = []
        self.watches_vms = any(p.name == "cloud" for p in providers)

    def watch(self, run_id: int) -> RunOut:
        """Progress until the run has ended and its archive is ready (or failed)."""
        with ProgressView(self.console) as view:
            while True:
                if self.embedded is not None:
                    self.embedded.ensure_alive()
                notes = [note for p in self.providers for note in p.poll()]
                try:
                    run = self.client.get_run(run_id)
                except (httpx.TransportError, Transient) as exc:
                    view.update_note(f"orchestrator unreachable ({exc}); retrying")
                    time.sleep(POLL)
                    continue
                view.update(run, notes, self._machines(run_id))
                if run.status != RunStatus.running and run.archive_state in (
                    ArchiveState.ready,
                    ArchiveState.failed,
                ):
                    return run
                self._check_stalled(run)
                time.sleep(POLL)

    def _machines(self, run_id: int) -> list[MachineRow]:
        """Every cloud VM's stage, since when and last line (none without cloud VMs)."""
        if not self.watches_vms:
            return []
        try:
            listing = self.client.machines(run_id)
        except (httpx.TransportError, Transient, ApiError) as exc:
            logger.warning("cannot read machine reports: %s", exc)
            return self._rows
        self._rows = [row for p in self.providers for row in p.observe(listing)]
        for provider in self.providers:
            for instance_id, cause in provider.lost():
                self._release(run_id, instance_id, cause)
        return self._rows

    def _release(self, run_id: int, instance_id: str, cause: str) -> None:
        """A failed VM's tasks go to another VM of its type now, not after a timeout."""
        try:
            done = self.client.machine_lost(run_id, instance_id, cause)
        except (httpx.TransportError, Transient, ApiError) as exc:
            logger.warning("cannot hand back the tasks of VM %s: %s", instance_id, exc)
            return
        if done.retried or done.failed:
            logger.warning(
                "VM %s failed (%s): task(s) %s retried elsewhere, %s out of attempts",
                instance_id,
                cause,
                done.retried,
                done.failed,
            )

    def _check_stalled(self, run: RunOut) -> None:
        if not self.providers or run.status != RunStatus.running:
            return
        self._check_exited(run)
        if any(p.active() for p in self.providers):
            self._idle_since = None
            return
        now = time.monotonic()
        self._idle_since = self._idle_since or now
        # Claimed tasks of dead runners time out first; pending ones would wait forever.
        if now - self._idle_since > self.heartbeat_timeout + 10:
            raise Stalled("every runner has exited but the run still has tasks; see runner logs")

    def _check_exited(self, run: RunOut) -> None:
        """Within a poll of the last runner of a type failing: its tasks have nobody left."""
        for provider in self.providers:
            for (name, alias), line in provider.exited().items():
                left = sum(
                    g.counts.pending + g.counts.claimed + g.counts.running
                    for g in run.instance_types
                    if g.provider == name and g.alias == alias
                )
                if left and provider.replace(name, alias):
                    continue  # reclaimed spot VMs replaced: the type goes on
                if left:
                    raise RunnersExited(
                        f"every runner of {alias} has exited with {left} task(s) left: {line}",
                        name,
                        alias,
                    )

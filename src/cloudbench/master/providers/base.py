"""The provider seam: what `cloudbench run` needs from local processes or a cloud.

Lifecycle, driven by the master: ``check`` (before anything starts; cheap, no side
effects), ``start`` (after the run exists: bring up runners for every instance type),
``poll`` (each watch tick: returns problems worth showing, may raise to abort),
``active`` (can anything of this provider still work on tasks?),
``exited`` ((provider, alias) none of whose runners is left, each with its last error
line), ``observe`` (the orchestrator's machine reports each tick: rows for the view),
``lost`` (machines that failed since the last tick: (instance id, cause), once each),
``stop`` (always, in a finally; idempotent; ``hurry`` means a second Ctrl-C).
A cloud provider (AWS: Terraform stacks + tag-based cleanup) implements the same four.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cloudbench.master.client import OrchestratorClient
from cloudbench.master.progress import MachineRow as MachineRow
from cloudbench.platform.state import Session
from cloudbench.protocol import InstanceTypeSpec, MachineList, RunSpec


class ProviderError(RuntimeError):
    """A provider cannot start or keep its runners going; the message is for the user."""


class StopRun(RuntimeError):
    """Raised once by ``poll``: stop the run and collect what exists (e.g. over budget)."""


@dataclass
class RunnerOptions:
    executor: str = "auto"
    slots: str | None = None
    ruby_bench: str | None = None
    # Runners must heartbeat well inside the orchestrator's timeout.
    heartbeat_interval: float | None = None
    # A failed task leaves its runner (and a cloud VM) up for a look; nothing shuts down.
    debug: bool = False
    # Cloud VMs that have not called in (boot stage `running`) by then have failed.
    boot_timeout: float = 15 * 60.0


@dataclass
class ProviderContext:
    run_id: int
    spec: RunSpec
    orchestrator_url: str
    runner_token: str
    state_dir: Path
    session: Session
    options: RunnerOptions = field(default_factory=RunnerOptions)
    # A resumed run: only these aliases still have work (None: every one, a new run).
    only: frozenset[str] | None = None
    resumed: bool = False
    # The certificate the master pins for orchestrator_url (a cloud deployment's, PEM).
    orchestrator_cert: str | None = None
    # The orchestrator's admin API (the master ships --ruby-bench through it to Azure VMs).
    api: OrchestratorClient | None = None

    def instance_types(self, provider: str) -> list[InstanceTypeSpec]:
        return [
            s
            for p, s in self.spec.instance_types()
            if p == provider and (self.only is None or s.effective_alias in self.only)
        ]


class Provider(Protocol):
    name: str

    def check(
        self, spec: RunSpec, options: RunnerOptions, *, resumed: int | None = None
    ) -> None: ...

    def start(self, ctx: ProviderContext) -> None: ...

    def poll(self) -> list[str]: ...

    def active(self) -> bool: ...

    def exited(self) -> dict[tuple[str, str], str]: ...

    def replace(self, provider: str, alias: str) -> bool: ...

    def observe(self, machines: MachineList) -> list[MachineRow]: ...

    def lost(self) -> list[tuple[str, str]]: ...

    def stop(self, hurry: bool = False) -> None: ...

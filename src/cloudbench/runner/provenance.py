"""What a task records about how it was measured: environment, noise, neighbours, checks."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudbench.platform.cpulease import CpuLeases, Lease
from cloudbench.protocol import TaskAssignment
from cloudbench.runner.alternate import HOW
from cloudbench.runner.columns import jits, labels, task_columns
from cloudbench.runner.cpuwatch import CpuWatch
from cloudbench.runner.environment import unexpected_keys
from cloudbench.runner.executors.base import ExecutionResult, Provisioned
from cloudbench.runner.machine_state import (
    NoiseSample,
    load_average,
    noise_between,
    sample_noise,
)
from cloudbench.runner.memory import memory_file
from cloudbench.runner.metadata import TaskFacts, utc_now
from cloudbench.runner.ordering import new_seed, order_facts
from cloudbench.runner.output import ResultFormatError, Timeline, read_result_json
from cloudbench.runner.slots import Slot, SlotPlan
from cloudbench.runner.verify import Verification, verify_file

log = logging.getLogger(__name__)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


Owner = tuple[int | None, str | None, int | None]


def _task_processes(result: ExecutionResult | None) -> Owner:
    """How to know the task's own processes: host session, container id, engine helper."""
    if result is None:
        return None, None, None
    helper = (result.engine_affinity or {}).get("helper") or {}
    pid = helper.get("pid") if isinstance(helper, dict) else None
    return result.session_id, result.container_id, pid if isinstance(pid, int) else None


def _step_processes(result: ExecutionResult | None) -> list[Owner]:
    """The same for each ruby-bench process of a task that ran several (alternate.py)."""
    return [_task_processes(step) for step in (result.steps if result else [])]


class Provenance:
    def __init__(
        self, task: TaskAssignment, slot: Slot, plan: SlotPlan | None, leases: CpuLeases
    ) -> None:
        self.task, self.slot, self.leases = task, slot, leases
        self.timeline = Timeline(labels(task))
        self.facts = TaskFacts(started_at=utc_now(), env_configured=dict(task.benchmarks.env))
        if plan is not None:
            self.facts.sharing_slots = plan.sharing(slot.index)
            self.facts.foreign_siblings = list(plan.foreign[slot.index])
        self._noise: NoiseSample | None = None
        self._load: list[float] | None = None
        self.seed = new_seed()
        self._markers: list[str] = []  # the prelude's lines about the order
        self._watch: CpuWatch | None = None
        self._lease: Lease | None = None
        # Set by the task when it ran one process per (Ruby, benchmark) (alternate.py).
        self.processes: list[dict[str, Any]] | None = None

    def chosen_env(self, pass_env: list[str]) -> dict[str, str]:
        """--pass-env names from the runner's environment, then benchmarks.env (wins)."""
        chosen = {k: os.environ[k] for k in pass_env if k in os.environ}
        chosen.update(self.task.benchmarks.env)
        self.facts.env_configured = chosen
        return chosen

    def on_line(self, line: str) -> None:
        self.timeline.feed(line, utc_now())
        if line.startswith("cloudbench: "):
            self._markers.append(line.strip())

    def take_cpus(self, stopped: Callable[[], bool]) -> Lease | None:
        """The machine-wide leases on the slot's CPUs, after every earlier waiter's turn."""
        holder = {
            "lease_id": f"{self.slot.runner_id}-{self.task.id}-{self.task.lease}",
            "pid": os.getpid(),
            "runner_id": self.slot.runner_id,
            "slot": self.slot.index,
            "task_id": self.task.id,
            "run_id": self.task.run_id,
            "alias": self.task.alias,
        }
        busy = self.leases.holders(self.slot.cpus)
        if busy:
            log.info(
                "task %d: CPUs %s busy (%s); waiting for our turn",
                self.task.id,
                self.slot.cpuset,
                ", ".join(str(b.get("lease_id")) for b in busy),
            )
        return self.leases.acquire(self.slot.cpus, holder, stopped)

    def start(self, lease: Lease) -> None:
        """The benchmark starts now, on CPUs this task holds (`lease`)."""
        self._lease = lease
        # The task's interval is its benchmark's: from when it held its CPUs.
        self.facts.claimed_at, self.facts.started_at = self.facts.started_at, _iso(lease.since)
        self.facts.lease = {
            "lease_id": lease.holder.get("lease_id"),
            "cpus": list(lease.cpus),
            "waited_seconds": round(lease.waited, 3),
            "record": str(lease.root),
        }
        # Every thread of the slot's cores: a sibling's work slows this benchmark too.
        watched = frozenset(self.slot.siblings or self.slot.cpus)
        self._watch = CpuWatch(watched)
        self._watch.start(f"slot-{self.slot.index}-cpuwatch", since=lease.since)
        self._noise, self._load = sample_noise(self.slot.cpus), load_average()

    def stop(self, provisioned: Provisioned | None, result: ExecutionResult | None) -> None:
        f = self.facts
        if self._noise is not None:
            end = sample_noise(self.slot.cpus)
            f.noise = {"load_average_start": self._load, **noise_between(self._noise, end)}
        if self._watch is not None:
            self._watch.stop()
            f.seen_on_cpus = self._watch.report(
                *_task_processes(result), more=_step_processes(result)
            )
        if self._lease is not None:
            f.concurrent = self._others(self._lease)
            self._lease.release()
            f.finished_at = utc_now()
        f.timeline = self.timeline.close(utc_now())
        f.order = order_facts(
            result.command if result else None, self.seed, self._markers, f.timeline
        )
        f.order["columns"] = [
            {
                "label": c.label,
                "ruby_version": c.ruby_version,
                "executable": c.spec.name,
                "jit": c.jit,
            }
            for c in task_columns(self.task)
        ]
        if self.processes is not None:  # several Rubies in containers (alternate.py)
            f.order.update(interleaved=True, alternated=HOW, processes=self.processes)
        if result is not None:
            image = provisioned is not None and provisioned.image_id is not None
            f.env_unexpected = unexpected_keys(result.environment, f.env_configured, image)

    def _others(self, lease: Lease) -> list[dict[str, object]]:
        """Other leases on this machine that overlapped this one (any CPU), from the
        machine-wide record, each saying whether it held a thread of this slot's cores."""
        mine, cores = set(self.slot.cpus), set(self.slot.siblings or self.slot.cpus)
        others = []
        for entry in self.leases.record(lease.since, time.time()):
            if entry.get("lease_id") == lease.holder.get("lease_id"):
                continue
            cpus = {int(c) for c in entry.get("cpus", [])}
            others.append(
                {
                    "slot": entry.get("slot"),
                    "task_id": entry.get("task_id"),
                    "run_id": entry.get("run_id"),
                    "runner_id": entry.get("runner_id"),
                    "pid": entry.get("pid"),
                    "cpus": sorted(cpus),
                    "same_cpus": bool(cpus & mine),
                    "shares_cores": bool(cpus & cores),
                }
            )
        return others

    def verify(self, path: Path, ruby: str) -> Verification | None:
        """ASLR and YJIT/interp from ruby-bench's own records (None: no usable output)."""
        try:
            read_result_json(path)
        except ResultFormatError:
            return None  # the result check reports it
        self.facts.verification = verify_file(path, jits(self.task), ruby)
        self.facts.memory = memory_file(path, task_columns(self.task))
        return self.facts.verification

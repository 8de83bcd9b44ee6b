"""metadata.json: what ran where, and what was verified, next to every result.

Format 6 (docs/results.md documents every field). The format-1 keys stay at the top level
with their old meaning, so readers of old results keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cloudbench
from cloudbench.platform.cpus import parse_cpu_list
from cloudbench.protocol import METADATA_VERSION, AslrState, Metadata, TaskAssignment
from cloudbench.runner.columns import task_columns
from cloudbench.runner.executors.base import ExecutionResult, Provisioned
from cloudbench.runner.ruby_bench import RubyBenchSource, suite_categories
from cloudbench.runner.slots import Slot, cpu_list
from cloudbench.runner.verify import Verification


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class TaskFacts:
    """What one task learned while it ran."""

    started_at: str  # when the benchmark got its CPUs (before: when the task was claimed)
    finished_at: str | None = None  # when it gave them back
    claimed_at: str | None = None
    provisioned: Provisioned | None = None
    result: ExecutionResult | None = None
    verification: Verification | None = None
    # Other cloudbench leases on this machine that overlapped this task (provenance.py).
    concurrent: list[dict[str, Any]] = field(default_factory=list)
    sharing_slots: list[int] = field(default_factory=list)  # slots on this slot's cores
    foreign_siblings: list[int] = field(default_factory=list)  # threads outside our CPUs
    seen_on_cpus: dict[str, Any] | None = None  # cpuwatch.CpuWatch.report
    lease: dict[str, Any] | None = None
    order: dict[str, Any] = field(default_factory=dict)  # ordering.py
    noise: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    env_configured: dict[str, str] = field(default_factory=dict)
    env_unexpected: list[str] = field(default_factory=list)
    failed_benchmarks: dict[str, list[str]] = field(default_factory=dict)
    rubies: dict[str, Provisioned] = field(default_factory=dict)  # every Ruby of the task
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)  # engines.py, by label
    memory: dict[str, Any] = field(default_factory=dict)  # memory.py, by label

    def _pinned(self, cpus: set[int]) -> bool:
        seen = (self.seen_on_cpus or {}).get("pinned", [])
        return any(cpus & parse_cpu_list(str(p.get("cpus_allowed", ""))) for p in seen)

    @property
    def own_core(self) -> bool:
        """Verified from the machine: no other cloudbench lease and no process pinned there
        used this slot's CPUs during the task (False when not watched)."""
        if self.seen_on_cpus is None or self.lease is None:
            return False
        cpus = {int(c) for c in self.lease.get("cpus", [])}
        return not any(c.get("same_cpus") for c in self.concurrent) and not self._pinned(cpus)

    @property
    def siblings_idle(self) -> bool:
        """As own_core, for every thread of the slot's cores."""
        # A sibling thread this runner may not use could hold anyone's work: not verified.
        if self.foreign_siblings or not self.own_core or self.seen_on_cpus is None:
            return False
        watched = parse_cpu_list(str(self.seen_on_cpus.get("cpus", "")))
        return not any(c.get("shares_cores") for c in self.concurrent) and not self._pinned(watched)


def _provisioned(p: Provisioned) -> dict[str, Any]:
    return {
        "ruby": p.ruby,
        "ruby_description": p.ruby_description,
        "base_image": p.base_image,
        "base_image_digest": p.base_image_digest,
        "image_id": p.image_id,
        "image_tag": p.image_tag,
    }


def _ruby(task: TaskAssignment, facts: TaskFacts, source: RubyBenchSource) -> dict[str, Any]:
    p, v = facts.provisioned, facts.verification
    executables = {}
    for column in task_columns(task):
        exe = column.label
        executables[exe] = {
            "ruby_v": v.ruby_v.get(exe) if v else None,
            "ruby_descriptions": v.descriptions.get(exe, []) if v else [],
            # Format 5: which Ruby, engine and options the label stands for, and the
            # provision-time probe (RubyVM::*JIT.enabled?; options "not verifiable").
            "ruby_version": column.ruby_version,
            "name": column.spec.name,
            "jit": column.jit,
            "options": list(column.spec.options),
            "engine_check": facts.engines.get(exe),
        }
    return {
        "ruby_version": task.ruby_version,
        "ruby_versions": task.rubies,
        "rubies": {r: _provisioned(q) for r, q in facts.rubies.items()},
        "ruby": p.ruby if p else None,
        "ruby_description": p.ruby_description if p else None,
        "executables": executables,
        "base_image": p.base_image if p else None,
        "base_image_digest": p.base_image_digest if p else None,
        "image_id": p.image_id if p else None,
        "image_tag": p.image_tag if p else None,
        "ruby_bench_commit": source.commit,
        "ruby_bench_source": source.origin,
        "ruby_bench_content_id": source.content_id,
    }


def _checks(facts: TaskFacts) -> dict[str, Any]:
    v = facts.verification
    return {
        "aslr_disabled": bool(v and v.aslr_disabled),
        "executables_verified": bool(v and v.executables_verified),
        "own_core": facts.own_core,
        "siblings_idle": facts.siblings_idle,
        "env_clean": facts.result is not None and not facts.env_unexpected,
        "steal_pct": facts.noise.get("steal_pct"),
        "engine_off_benchmark_cpus": _engine_off(facts),
    }


def _engine_off(facts: TaskFacts) -> bool | None:
    r = facts.result
    if r is not None and r.container_id is None:
        return None  # the host executor: no engine
    return bool(r and r.engine_affinity and r.engine_affinity.get("off_benchmark_cpus"))


def _slot(slot: Slot, facts: TaskFacts) -> dict[str, Any]:
    return {
        "index": slot.index,
        "cpuset": slot.cpuset,
        "siblings": cpu_list(slot.siblings),
        "slots_sharing_cores": facts.sharing_slots,
        "siblings_outside_runner": facts.foreign_siblings,
        "concurrent_task_ids": _task_ids(facts.concurrent),
        "concurrent": facts.concurrent,
        "lease": facts.lease,
        "seen_on_cpus": facts.seen_on_cpus,
    }


def _task_ids(concurrent: list[dict[str, Any]]) -> list[int]:
    return sorted({int(c["task_id"]) for c in concurrent if c.get("task_id") is not None})


def _environment(facts: TaskFacts) -> dict[str, Any]:
    result = facts.result
    return {
        "passed": dict(sorted(result.environment.items())) if result else {},
        "configured": facts.env_configured,
        "dropped_from_runner": result.env_dropped if result else [],
        "unexpected": facts.env_unexpected,
    }


def build_metadata(
    task: TaskAssignment,
    slot: Slot,
    source: RubyBenchSource,
    executor: str,
    machine: dict[str, Any],
    facts: TaskFacts,
    boot: dict[str, Any] | None = None,
) -> Metadata:
    cpu = machine.get("cpu", {})
    v, r = facts.verification, facts.result
    data: dict[str, Any] = {
        "format_version": METADATA_VERSION,
        "task_id": task.id,
        "run_id": task.run_id,
        "provider": task.provider,
        "instance_type": task.instance_type,
        "alias": task.alias,
        "run_number": task.run_number,
        "runner_id": slot.runner_id,
        "lease": task.lease,
        "ruby_version": task.ruby_version,
        "benchmarks": task.benchmarks.model_dump(mode="json"),
        "executor": executor,
        "cpuset": slot.cpuset,
        "cloudbench_version": cloudbench.__version__,
        "started_at": facts.started_at,
        "finished_at": facts.finished_at,
        "claimed_at": facts.claimed_at or facts.started_at,
        "failed_benchmarks": facts.failed_benchmarks,
        "benchmark_categories": suite_categories(source.path),
        # format-1 names, kept for old readers
        "hostname": machine.get("hostname"),
        "cpu_model": cpu.get("model_name"),
        "logical_cores": cpu.get("logical_cpus"),
        "physical_cores": cpu.get("physical_cores"),
        "arch": cpu.get("arch"),
        "kernel": machine.get("machine", {}).get("kernel_release"),
        "ruby_description": facts.provisioned.ruby_description if facts.provisioned else None,
        "ruby_bench_commit": source.commit,
        "aslr": (v.aslr if v else AslrState.unknown).value,
        "checks": _checks(facts),
        "instance": machine.get("instance", {}),
        "cpu": cpu,
        "slot": _slot(slot, facts),
        "machine": machine.get("machine", {}),
        "ruby": _ruby(task, facts, source),
        "environment": _environment(facts),
        "noise": facts.noise,
        "benchmark_timeline": facts.timeline,
        "benchmark_order": facts.order,
        "memory": facts.memory,
        "execution": {
            "exit_code": r.exit_code,
            "command": r.command,
            "timed_out": r.timed_out,
            "duration_seconds": round(r.duration, 3),
            "container_id": r.container_id,
            "engine_affinity": r.engine_affinity,
        }
        if r
        else None,
        "boot": boot,
    }
    return Metadata.model_validate(data)

"""metadata.json: what ran where, recorded next to every result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import cloudbench
from cloudbench.protocol import Metadata, TaskAssignment
from cloudbench.runner.executors.base import ExecutionResult, Provisioned
from cloudbench.runner.ruby_bench import RubyBenchSource


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_metadata(
    task: TaskAssignment,
    runner_id: str,
    cpus: tuple[int, ...],
    source: RubyBenchSource,
    executor: str,
    machine: dict[str, object],
    **extra: Any,
) -> Metadata:
    """The fixed part; run-dependent facts come in `extra` as they become known."""
    data: dict[str, Any] = {
        "task_id": task.id,
        "run_id": task.run_id,
        "provider": task.provider,
        "instance_type": task.instance_type,
        "alias": task.alias,
        "run_number": task.run_number,
        "runner_id": runner_id,
        "lease": task.lease,
        "ruby_version": task.ruby_version,
        "benchmarks": task.benchmarks.model_dump(mode="json"),
        "ruby_bench_commit": source.commit,
        "ruby_bench_source": source.origin,
        "ruby_bench_content_id": source.content_id,
        "executor": executor,
        "cpuset": ",".join(str(c) for c in cpus),
        "cloudbench_version": cloudbench.__version__,
        **machine,
    }
    data.update(extra)
    return Metadata.model_validate(data)


def run_facts(provisioned: Provisioned | None, result: ExecutionResult | None) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if provisioned is not None:
        facts["ruby_description"] = provisioned.ruby_description
        facts["image_id"] = provisioned.image_id
        facts["image_tag"] = provisioned.image_tag
    if result is not None:
        facts["exit_code"] = result.exit_code
        facts["command"] = result.command
        facts["timed_out"] = result.timed_out
        facts["duration_seconds"] = round(result.duration, 3)
        facts["container_id"] = result.container_id
    return facts

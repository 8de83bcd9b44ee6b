"""Executors run ruby-bench for a task: in a container (docker) or with a host Ruby."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from cloudbench.runner.executors.base import (
    ExecutionResult,
    ExecutionSpec,
    Executor,
    Provisioned,
    ProvisionError,
)

if TYPE_CHECKING:  # ruby_bench imports executors.base: avoid the cycle at run time
    from cloudbench.runner.ruby_bench import RubyBenchSource

log = logging.getLogger(__name__)

__all__ = [
    "ExecutionResult",
    "ExecutionSpec",
    "Executor",
    "ProvisionError",
    "Provisioned",
    "choose",
    "engine_answers",
]


def engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception as exc:  # any failure means "no usable engine"
        log.debug("no container engine: %s", exc)
        return False


def choose(kind: str, source: RubyBenchSource, work_dir: Path) -> Executor:
    """docker, host, or auto: docker when an engine answers, else host."""
    if kind == "auto":
        kind = "docker" if engine_answers() else "host"
        log.info("executor auto -> %s", kind)
    if kind == "docker":
        from cloudbench.runner.executors.docker import DockerExecutor

        return DockerExecutor(source, work_dir / "build")
    if kind == "host":
        from cloudbench.runner.executors.host import HostExecutor

        return HostExecutor(source)
    raise ValueError(f"unknown executor {kind!r}")

"""Executors run ruby-bench for a task: in a container (docker) or with a host Ruby."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cloudbench.runner.executors.base import (
    ExecutionResult,
    ExecutionSpec,
    Executor,
    MachineUnfit,
    Provisioned,
    ProvisionError,
    StartupError,
)

if TYPE_CHECKING:  # ruby_bench imports executors.base: avoid the cycle at run time
    from cloudbench.runner.executors.engine_affinity import EngineAffinity
    from cloudbench.runner.ruby_bench import RubyBenchSource

log = logging.getLogger(__name__)

__all__ = [
    "ExecutionResult",
    "ExecutionSpec",
    "Executor",
    "MachineUnfit",
    "ProvisionError",
    "Provisioned",
    "StartupError",
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


class AutoExecutor:
    """Containers when an engine answers, else the host's Ruby — decided per Ruby version.

    ``"ruby_version": "system"`` means the host's own Ruby, which no image holds, so those
    tasks run on the host even where an engine exists; every other version gets the
    official image. One config then works on machines with and without an engine.
    """

    name = "auto"

    def __init__(
        self,
        source: RubyBenchSource,
        work_dir: Path,
        engine: bool,
        digest: str | None = None,
        affinity: EngineAffinity | None = None,
    ) -> None:
        self._source, self._work_dir, self._engine = source, work_dir, engine
        self._digest, self._affinity = digest, affinity
        self._made: dict[str, Executor] = {}

    def _get(self, kind: str) -> Executor:
        if kind not in self._made:
            self._made[kind] = _make(
                kind, self._source, self._work_dir, self._digest, self._affinity
            )
        return self._made[kind]

    def provision(self, ruby_version: str) -> Provisioned:
        kind = "docker" if self._engine and ruby_version != "system" else "host"
        return self._get(kind).provision(ruby_version)

    def execute(self, spec: ExecutionSpec) -> ExecutionResult:
        # Only the docker executor provisions an image.
        kind = "docker" if spec.provisioned.image_id is not None else "host"
        return self._get(kind).execute(spec)

    def probe(self, provisioned: Provisioned, args: list[str]) -> tuple[int, str]:
        kind = "docker" if provisioned.image_id is not None else "host"
        return self._get(kind).probe(provisioned, args)

    def close(self) -> None:
        for executor in self._made.values():
            executor.close()


def choose(
    kind: str,
    source: RubyBenchSource,
    work_dir: Path,
    base_digest: str | None = None,
    affinity: EngineAffinity | None = None,
) -> Executor:
    """docker, host, or auto: docker when an engine answers, else host."""
    if kind == "auto":
        engine = engine_answers()
        log.info("executor auto: container engine %s", "answers" if engine else "absent")
        return AutoExecutor(source, work_dir, engine, base_digest, affinity)
    if kind == "docker" and not engine_answers():
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise StartupError(
            f"--executor docker: no container engine answers at {where} — start docker "
            "(or podman's Docker API service and set DOCKER_HOST), or pass --executor host"
        )
    return _make(kind, source, work_dir, base_digest, affinity)


def _make(
    kind: str,
    source: RubyBenchSource,
    work_dir: Path,
    base_digest: str | None = None,
    affinity: EngineAffinity | None = None,
) -> Executor:
    if kind == "docker":
        from cloudbench.runner.executors.docker import DockerExecutor

        return DockerExecutor(
            source, work_dir / "build", base_digest=base_digest, affinity=affinity
        )
    if kind == "host":
        from cloudbench.runner.executors.host import HostExecutor

        return HostExecutor(source)
    raise ValueError(f"unknown executor {kind!r}")

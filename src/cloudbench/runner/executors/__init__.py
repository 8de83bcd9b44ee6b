"""Executors run ruby-bench for a task: in a container (docker) or with a host Ruby."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cloudbench.protocol import BenchmarkSettings
from cloudbench.runner.executors.base import (
    ExecutionResult,
    ExecutionSpec,
    Executor,
    ImageSharing,
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
    "ImageSharing",
    "MachineUnfit",
    "ProvisionError",
    "Provisioned",
    "StartupError",
    "choose",
    "engine_answers",
]


DEFAULT_ENGINE = "unix:///var/run/docker.sock"
ENGINE_WAIT = 120.0  # seconds a runner waits for an engine that exists but does not answer


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE


def engine_answers(wait: float = 0.0) -> bool:
    """Whether a container engine answers, waiting up to `wait` seconds for one that is
    there (its socket exists, or it is a TCP address) but does not answer yet: a daemon
    still starting at boot, or a socket slow under load. No socket at all: no engine."""
    where = engine_address()
    if where.startswith("unix://") and not Path(where.removeprefix("unix://")).exists():
        log.debug("no container engine: %s does not exist", where)
        return False
    deadline = time.monotonic() + wait
    told, attempt = 0.0, 0
    while True:
        # Short first (an idle engine answers at once), longer as it stays busy.
        attempt += 1
        left = deadline - time.monotonic()
        problem = _ping(timeout=max(5.0, min(5.0 * attempt, 30.0, left)))
        if problem is None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            log.debug("no container engine: %s", problem)
            return False
        if time.monotonic() - told >= 10.0:
            log.info(
                "waiting for the container engine at %s to answer (%.0fs left): %s",
                where,
                left,
                problem,
            )
            told = time.monotonic()
        time.sleep(min(2.0, left))


def _ping(timeout: float) -> str | None:
    """None when the engine answers a ping, else what went wrong."""
    try:
        import docker

        client = docker.from_env(timeout=int(timeout))
        try:
            return None if client.ping() else "ping answered false"
        finally:
            client.close()
    except Exception as exc:  # any failure means "no usable engine (yet)"
        return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


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
        ruby_image: str = "ruby",
        images: ImageSharing | None = None,
    ) -> None:
        self._source, self._work_dir, self._engine = source, work_dir, engine
        self._digest, self._affinity, self._ruby_image = digest, affinity, ruby_image
        self._images = images
        self._made: dict[str, Executor] = {}

    def _get(self, kind: str) -> Executor:
        if kind not in self._made:
            self._made[kind] = _make(
                kind,
                self._source,
                self._work_dir,
                self._digest,
                self._affinity,
                self._ruby_image,
                self._images,
            )
        return self._made[kind]

    def provision(
        self, ruby_version: str, benchmarks: BenchmarkSettings | None = None
    ) -> Provisioned:
        kind = "docker" if self._engine and ruby_version != "system" else "host"
        return self._get(kind).provision(ruby_version, benchmarks)

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
    engine_wait: float = ENGINE_WAIT,
    ruby_image: str = "ruby",
    images: ImageSharing | None = None,
) -> Executor:
    """docker, host, or auto: docker when an engine answers, else host.

    An engine whose socket exists is waited for up to `engine_wait` seconds."""
    if kind == "auto":
        engine = engine_answers(engine_wait)
        log.info("executor auto: container engine %s", "answers" if engine else "absent")
        return AutoExecutor(source, work_dir, engine, base_digest, affinity, ruby_image, images)
    if kind == "docker" and not engine_answers(engine_wait):
        raise StartupError(
            f"--executor docker: no container engine answers at {engine_address()} "
            f"(waited {engine_wait:.0f}s) — start docker (or podman's Docker API service "
            "and set DOCKER_HOST), or pass --executor host"
        )
    return _make(kind, source, work_dir, base_digest, affinity, ruby_image, images)


def _make(
    kind: str,
    source: RubyBenchSource,
    work_dir: Path,
    base_digest: str | None = None,
    affinity: EngineAffinity | None = None,
    ruby_image: str = "ruby",
    images: ImageSharing | None = None,
) -> Executor:
    if kind == "docker":
        from cloudbench.runner.executors.docker import DockerExecutor

        return DockerExecutor(
            source,
            work_dir / "build",
            base_digest=base_digest,
            affinity=affinity,
            ruby_image=ruby_image,
            images=images,
        )
    if kind == "host":
        from cloudbench.runner.executors.host import HostExecutor

        return HostExecutor(source)
    raise ValueError(f"unknown executor {kind!r}")

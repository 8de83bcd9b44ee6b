"""Containers the runner labelled as ours (``cloudbench=1``), via the Docker SDK.

Works with Docker and with Podman's Docker API (DOCKER_HOST). No engine is not an error:
there is then nothing to clean up.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)
# The URL of the orchestrator whose task the container runs: run ids are unique per
# orchestrator only, so a master cleaning up its run names both (another master on the
# machine may have a run with the same id, started in the same second).
ORCHESTRATOR_LABEL = "cloudbench.orchestrator"


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    status: str
    run_id: str | None


def _client() -> Any | None:
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return None
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        return client
    except DockerException as exc:
        logger.debug("no container engine answers: %s", exc)
        return None


def _filters(run_id: int | None, orchestrator: str | None = None) -> dict[str, list[str]]:
    labels = ["cloudbench=1"]
    if run_id is not None:
        labels.append(f"cloudbench.run_id={run_id}")
    if orchestrator:  # as runners label it (their setting drops a trailing slash)
        labels.append(f"{ORCHESTRATOR_LABEL}={orchestrator.rstrip('/')}")
    return {"label": labels}


def list_ours(run_id: int | None = None, orchestrator: str | None = None) -> list[ContainerInfo]:
    client = _client()
    if client is None:
        return []
    try:
        return [
            ContainerInfo(c.short_id, c.name, c.status, c.labels.get("cloudbench.run_id"))
            for c in client.containers.list(all=True, filters=_filters(run_id, orchestrator))
        ]
    finally:
        client.close()


def remove_ours(run_id: int | None = None, orchestrator: str | None = None) -> int:
    """Force-remove our containers (one run's, or all; `orchestrator`: only that one's
    run); returns how many went."""
    client = _client()
    if client is None:
        return 0
    from docker.errors import DockerException

    removed = 0
    try:
        for container in client.containers.list(all=True, filters=_filters(run_id, orchestrator)):
            try:
                # SIGKILL first: a forced remove stops with the container's stop timeout
                # (10 s; a PID 1 that ignores SIGTERM uses all of it), longer than the
                # client's 10 s read timeout, which then failed the whole removal.
                if container.status == "running":
                    with contextlib.suppress(DockerException):  # it may have just ended
                        container.kill()
                container.remove(force=True)
                removed += 1
            except DockerException as exc:
                logger.warning("could not remove container %s: %s", container.short_id, exc)
    finally:
        client.close()
    return removed

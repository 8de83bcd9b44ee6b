"""`cloudbench run` with the docker executor against a real engine (podman in CI)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from cloudbench.platform import containers
from tests.master.conftest import Harness, fake_config, last_json

pytestmark = [pytest.mark.container, pytest.mark.slow]
PODMAN_SOCK = Path("/run/podman/podman.sock")


def test_two_instance_types_in_containers(harness: Harness, container_engine: str) -> None:
    config = {**fake_config(["a", "b"], 2, ["fib"]), "ruby_version": "3.1"}
    harness.start(harness.config(config), executor="docker")
    code, out, err = harness.wait(timeout=300)
    assert code == 0, err
    run_id = last_json(out)["run_id"]
    manifest = json.loads((harness.results / str(run_id) / "manifest.json").read_text())
    assert [t["status"] for t in manifest["tasks"]] == ["completed"] * 4
    metadata = harness.results / str(run_id) / manifest["tasks"][0]["directory"] / "metadata.json"
    assert json.loads(metadata.read_text())["executor"] == "docker"
    assert containers.list_ours(run_id) == []
    harness.assert_nothing_left()


def test_cleanup_leaves_another_orchestrators_run_with_the_same_id(container_engine: str) -> None:
    """Run ids are unique per orchestrator only (a run's id is the second it was created):
    a master removing its run's containers leaves those of another orchestrator's run
    that got the same id (seen in CI: two tests' runs, one second, one id)."""
    import docker

    from tests.engines import RUBY_IMAGE

    client = docker.from_env()
    labels = {"cloudbench": "1", "cloudbench.run_id": "1790000001"}
    mine = client.containers.create(
        RUBY_IMAGE, "true", labels={**labels, containers.ORCHESTRATOR_LABEL: "http://a:1"}
    )
    theirs = client.containers.create(
        RUBY_IMAGE, "true", labels={**labels, containers.ORCHESTRATOR_LABEL: "http://b:2"}
    )
    try:
        assert containers.remove_ours(1790000001, "http://a:1") == 1
        assert [c.id for c in containers.list_ours(1790000001)] == [theirs.short_id]
    finally:
        for container in (mine, theirs):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        client.close()

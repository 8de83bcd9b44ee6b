"""`cloudbench run` with the docker executor against a real engine (podman in CI)."""

from __future__ import annotations

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

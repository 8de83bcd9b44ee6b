"""`cloudbench run` with the docker executor against a real engine (podman in CI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cloudbench.master import containers
from tests.master.conftest import Harness, fake_config, last_json

pytestmark = [pytest.mark.container, pytest.mark.slow]
PODMAN_SOCK = Path("/run/podman/podman.sock")


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.environ.get("DOCKER_HOST") and PODMAN_SOCK.exists():
        monkeypatch.setenv("DOCKER_HOST", f"unix://{PODMAN_SOCK}")
    from cloudbench.runner.executors import engine_answers

    if not engine_answers():
        pytest.skip(
            "CONTAINER TEST SKIPPED: no engine answers at DOCKER_HOST; run "
            "scripts/setup-container-engine.sh (root, Debian) first"
        )


def test_two_instance_types_in_containers(harness: Harness, engine: None) -> None:
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

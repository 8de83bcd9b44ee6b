"""Boot stages (issue 27): what the runner takes from the cloud and the boot script, and
what it adds; a real runner process against a real orchestrator writes them into the
machine row and every task's metadata.json."""

from __future__ import annotations

import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloudbench.runner.boot import BootClock
from tests.orchestrator_proc import OrchestratorProcess
from tests.runner.conftest import FAKE_SUITE
from tests.runner.test_machine_report import CONFIG, _machines, _run
from tests.runner.test_startup import _run_runner

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def test_cloud_and_boot_script_times_come_first() -> None:
    env = {
        "CLOUDBENCH_BOOT_USER_DATA_START": "2026-12-07T10:00:20.500Z",
        "CLOUDBENCH_BOOT_RUNNER_INSTALLED": "2026-12-07T10:01:00Z",
        "CLOUDBENCH_BOOT_IMAGE_PRESENT": "not a time",
    }
    clock = BootClock.at_start({"launched_at": "2026-12-07T10:00:00Z"}, env)
    clock.mark("first_claim", T0 + timedelta(seconds=70))
    assert not clock.mark("first_claim", T0 + timedelta(seconds=99))  # the first time stays
    clock.mark("image_present", T0 + timedelta(seconds=80))
    clock.mark("first_benchmark", T0 + timedelta(seconds=90.75))
    block = clock.block()
    assert list(block["stages"]) == [
        "instance_start",
        "user_data_start",
        "runner_installed",
        "image_present",
        "first_claim",
        "first_benchmark",
    ]
    assert block["stages"]["first_claim"] == "2026-12-07T10:01:10.000+00:00"
    assert block["time_to_first_benchmark_s"] == 70.25  # from user-data start, not launch
    with pytest.raises(ValueError, match="unknown boot stage"):
        clock.mark("second_breakfast")


def test_a_local_runner_starts_its_own_boot() -> None:
    clock = BootClock.at_start({}, {})
    stages = clock.stages()
    assert set(stages) == {"user_data_start", "runner_installed"}
    assert stages["user_data_start"] == stages["runner_installed"]
    assert clock.block()["time_to_first_benchmark_s"] is None


def _metadata_of_result(orch: OrchestratorProcess, run_id: int) -> dict[str, Any]:
    with orch.client() as http:
        [task] = http.get(f"/runs/{run_id}/tasks").json()["tasks"]
    key = task["result_key"]
    (path,) = [p for p in orch.state_dir.rglob("*.tar.gz") if str(p).endswith(key)]
    with tarfile.open(path) as tar:
        member = tar.extractfile("metadata.json")
        assert member is not None
        return dict(json.loads(member.read()))


@pytest.mark.usefixtures("ruby")
def test_stages_reach_the_machine_row_and_metadata(
    orchestrator_server: OrchestratorProcess, tmp_path: Path
) -> None:
    run_id = _run(orchestrator_server, {"ruby_version": "system", **CONFIG})
    start = datetime.now(UTC) - timedelta(seconds=30)
    code, stderr, _ = _run_runner(
        tmp_path,
        "--executor",
        "host",
        "--ruby-bench",
        str(FAKE_SUITE),
        "--run-id",
        str(run_id),
        url=orchestrator_server.url,
        token=orchestrator_server.runner_token,
        env={
            "CLOUDBENCH_INSTANCE_ID": "i-0boot",
            "CLOUDBENCH_BOOT_USER_DATA_START": start.isoformat(),
        },
    )
    assert code == 0, stderr
    [machine] = _machines(orchestrator_server, run_id)
    kept = {k: datetime.fromisoformat(v) for k, v in machine["stages"].items()}
    assert set(kept) == {
        "user_data_start",
        "runner_installed",
        "ruby_ready",
        "first_claim",
        "first_benchmark",
    }
    assert abs((kept["user_data_start"] - start).total_seconds()) < 0.01
    order = ["user_data_start", "runner_installed", "first_claim", "ruby_ready", "first_benchmark"]
    assert [kept[n] for n in order] == sorted(kept[n] for n in order)
    boot = _metadata_of_result(orchestrator_server, run_id)["boot"]
    assert {k: datetime.fromisoformat(v) for k, v in boot["stages"].items()} == kept
    expected = (kept["first_benchmark"] - kept["user_data_start"]).total_seconds()
    assert boot["time_to_first_benchmark_s"] == pytest.approx(expected, abs=0.002)
    assert 30 <= boot["time_to_first_benchmark_s"] < 150

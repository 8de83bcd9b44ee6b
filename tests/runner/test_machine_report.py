"""A cloud runner reports its machine's stage (issue 23): real runner processes against a
real orchestrator on Postgres, reading back `GET /runs/{id}/machines`.

CLOUDBENCH_INSTANCE_ID is what the VM's user-data sets from its metadata service; the
machine here is this one (the host executor and the fake ruby-bench suite).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.orchestrator_proc import OrchestratorProcess
from tests.runner.conftest import FAKE_SUITE
from tests.runner.test_startup import EXIT_STARTUP, _run_runner

CONFIG: dict[str, Any] = {
    "local": ["itest"],
    "per_instance_type": {"tasks": 1},
    "benchmarks": {
        "names": ["fib"],
        "executables": ["interp"],
        "warmup_iterations": 0,
        "bench_iterations": 1,
    },
}


def _run(orch: OrchestratorProcess, body: dict[str, Any]) -> int:
    with orch.client() as http:
        created = http.post("/runs", json=body)
        assert created.status_code == 201, created.text
        return int(created.json()["run_id"])


def _machines(orch: OrchestratorProcess, run_id: int) -> list[dict[str, Any]]:
    with orch.client() as http:
        return list(http.get(f"/runs/{run_id}/machines").json()["machines"])


@pytest.mark.usefixtures("ruby")
def test_a_runner_that_finishes_reports_finished(
    orchestrator_server: OrchestratorProcess, tmp_path: Any
) -> None:
    run_id = _run(orchestrator_server, {"ruby_version": "system", **CONFIG})
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
        env={"CLOUDBENCH_INSTANCE_ID": "i-0runner1"},
    )
    assert code == 0, stderr
    [machine] = _machines(orchestrator_server, run_id)
    assert machine["instance_id"] == "i-0runner1" and machine["provider"] == "local"
    assert machine["instance_type"] == "itest" and machine["alias"] == "itest"
    assert machine["stage"] == "finished" and machine["message"] == "all slots done"
    assert machine["host"]


@pytest.mark.usefixtures("ruby")
def test_a_runner_that_cannot_start_reports_error_with_its_last_lines(
    orchestrator_server: OrchestratorProcess, tmp_path: Any
) -> None:
    run_id = _run(orchestrator_server, {"ruby_version": "9.9.9", **CONFIG})
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
        env={"CLOUDBENCH_INSTANCE_ID": "i-0runner2"},
    )
    assert code == EXIT_STARTUP, stderr
    [machine] = _machines(orchestrator_server, run_id)
    assert machine["stage"] == "error", machine
    assert machine["message"].startswith("error: no Ruby 9.9.9 on this host"), machine
    assert "runner: 1 slot(s)" in machine["log_tail"], machine


@pytest.mark.usefixtures("ruby")
def test_without_an_instance_id_nothing_is_reported(
    orchestrator_server: OrchestratorProcess, tmp_path: Any
) -> None:
    run_id = _run(orchestrator_server, {"ruby_version": "system", **CONFIG})
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
    )
    assert code == 0, stderr
    assert _machines(orchestrator_server, run_id) == []


@pytest.mark.usefixtures("ruby")
def test_debug_with_a_failed_task_leaves_the_keep_marker_and_reports_error(
    orchestrator_server: OrchestratorProcess, tmp_path: Any
) -> None:
    """What the VM's boot script reads to stay up instead of powering off (--debug)."""
    body = {**CONFIG, "ruby_version": "system", "max_attempts": 1}
    body["benchmarks"] = {**CONFIG["benchmarks"], "names": ["failing"]}
    run_id = _run(orchestrator_server, body)
    args = ["--executor", "host", "--ruby-bench", str(FAKE_SUITE), "--run-id", str(run_id)]
    env = {"CLOUDBENCH_INSTANCE_ID": "i-0dbg"}
    code, stderr, _ = _run_runner(
        tmp_path,
        *args,
        "--debug",
        env=env,
        url=orchestrator_server.url,
        token=orchestrator_server.runner_token,
    )
    assert code == 0, stderr
    marker = tmp_path / "work" / "debug-keep"
    assert marker.read_text().startswith("task "), stderr
    [machine] = _machines(orchestrator_server, run_id)
    assert machine["stage"] == "error"
    assert "1 task(s) failed; staying up for debugging (--debug)" in machine["message"]

    # Without --debug: the same failure is no reason to stay up.
    run_id = _run(orchestrator_server, {**body, "run_id": run_id + 1})
    args[-1] = str(run_id)
    code, stderr, _ = _run_runner(
        tmp_path / "plain",
        *args,
        env=env,
        url=orchestrator_server.url,
        token=orchestrator_server.runner_token,
    )
    assert code == 0, stderr
    assert not (tmp_path / "plain" / "work" / "debug-keep").exists()
    assert _machines(orchestrator_server, run_id)[0]["stage"] == "finished"


def test_reporter_follows_slot_steps_and_keeps_alive(
    orchestrator_server: OrchestratorProcess, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the stage hook TaskRun calls (uploading, running again) and the
    keep-alive that lets the master tell a live VM from a dead one."""
    import time

    from cloudbench.protocol import HeartbeatStatus
    from cloudbench.runner.client import OrchestratorClient
    from cloudbench.runner.machine_report import MachineReporter
    from cloudbench.runner.settings import RunnerSettings

    run_id = _run(orchestrator_server, {"ruby_version": "system", **CONFIG})
    monkeypatch.setenv("CLOUDBENCH_RUNNER_TOKEN", orchestrator_server.runner_token)
    settings = RunnerSettings(
        orchestrator_url=orchestrator_server.url,
        instance_type="itest",
        run_id=run_id,
        instance_id="i-0slot",
        heartbeat_interval=0.5,
        work_dir=tmp_path,
    )
    client = OrchestratorClient(settings.orchestrator_url, orchestrator_server.runner_token)
    reporter = MachineReporter(settings, client)
    reporter.start()
    try:
        reporter.report(HeartbeatStatus.running, "runner: 1 slot(s)")
        reporter.stage_changed(HeartbeatStatus.uploading, "task 1: uploading its result")
        [machine] = _machines(orchestrator_server, run_id)
        assert machine["stage"] == "uploading", machine
        assert machine["message"] == "task 1: uploading its result"
        since, seen = machine["stage_since"], machine["last_seen_at"]
        time.sleep(1.5)  # keep-alives, same stage
        [machine] = _machines(orchestrator_server, run_id)
        assert machine["stage_since"] == since and machine["last_seen_at"] > seen
        reporter.stage_changed(HeartbeatStatus.running, "task 1: result uploaded")
        assert _machines(orchestrator_server, run_id)[0]["stage"] == "running"
        # The final report is the last: no keep-alive replaces its cause with a log line.
        reporter.report(HeartbeatStatus.error, "preempted: the notice", final=True)
        time.sleep(1.5)  # keep-alive intervals pass
        reporter.report(HeartbeatStatus.running)
        [machine] = _machines(orchestrator_server, run_id)
        assert (machine["stage"], machine["message"]) == ("error", "preempted: the notice")
    finally:
        reporter.stop()
        client.close()

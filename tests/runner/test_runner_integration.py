"""A runner process (host executor, fake suite) against a real orchestrator on Postgres."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.orchestrator_proc import OrchestratorProcess
from tests.runner.conftest import FAKE_SUITE

pytestmark = pytest.mark.usefixtures("ruby")


def _create_run(orch: OrchestratorProcess, tasks: int, ruby: str = "system", **bench: Any) -> int:
    body = {
        "ruby_version": ruby,
        "per_instance_type": {"tasks": tasks},
        "local": ["itest"],
        "benchmarks": {
            "executables": ["interp"],
            "warmup_iterations": 0,
            "bench_iterations": 1,
            **bench,
        },
    }
    with orch.client() as http:
        response = http.post("/runs", json=body)
        assert response.status_code == 201, response.text
        return int(response.json()["run_id"])


def _tasks(orch: OrchestratorProcess, run_id: int) -> list[dict[str, Any]]:
    with orch.client() as http:
        return list(http.get(f"/runs/{run_id}/tasks").json()["tasks"])


@pytest.fixture
def start_runner(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        orch: OrchestratorProcess,
        run_id: int,
        slots: int = 1,
        env: dict[str, str] | None = None,
        executor: str = "host",
    ) -> subprocess.Popen[bytes]:
        full_env = {
            **os.environ,
            "CLOUDBENCH_RUNNER_TOKEN": orch.runner_token,
            "CLOUDBENCH_HEARTBEAT_INTERVAL": "1",
            "CLOUDBENCH_UNREACHABLE_GIVE_UP": "60",
            # The fake suite's `sleepy` reads it; the benchmark environment is an allowlist.
            "CLOUDBENCH_PASS_ENV": "FAKE_BENCH_SLEEP",
            **(env or {}),
        }
        log = open(tmp_path / f"runner{len(procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cloudbench.runner",
                "--orchestrator-url",
                orch.url,
                "--provider",
                "local",
                "--instance-type",
                "itest",
                "--run-id",
                str(run_id),
                "--slots",
                str(slots),
                "--executor",
                executor,
                "--ruby-bench",
                str(FAKE_SUITE),
                "--work-dir",
                str(tmp_path / "work"),
            ],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _runner_log(tmp_path: Path) -> str:
    return "\n".join(p.read_text()[-4000:] for p in sorted(tmp_path.glob("runner*.log")))


def _wait_status(orch: OrchestratorProcess, run_id: int, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(t["heartbeat_status"] == status for t in _tasks(orch, run_id)):
            return
        time.sleep(0.3)
    raise AssertionError(f"no task reached {status}: {_tasks(orch, run_id)}")


def test_runner_completes_tasks(
    orchestrator_server: OrchestratorProcess, start_runner: Callable[..., Any], tmp_path: Path
) -> None:
    run_id = _create_run(orchestrator_server, tasks=3, names=["fib", "loops"])
    proc = start_runner(orchestrator_server, run_id, slots=2)
    assert proc.wait(timeout=120) == 0, _runner_log(tmp_path)
    tasks = _tasks(orchestrator_server, run_id)
    assert [t["status"] for t in tasks] == ["completed"] * 3, tasks
    assert all(t["result_key"] for t in tasks)
    assert len({t["runner_id"] for t in tasks}) <= 2


def test_failing_benchmark_reported(
    orchestrator_server: OrchestratorProcess, start_runner: Callable[..., Any], tmp_path: Path
) -> None:
    run_id = _create_run(orchestrator_server, tasks=1, names=["fib", "failing"])
    proc = start_runner(orchestrator_server, run_id)
    assert proc.wait(timeout=120) == 0, _runner_log(tmp_path)
    (task,) = _tasks(orchestrator_server, run_id)
    assert task["status"] == "failed"
    assert task["error_type"] == "benchmark_failed"
    assert "failing" in task["error_message"]
    assert task["error_key"]


def test_names_matching_nothing_is_a_failure_not_an_empty_success(
    orchestrator_server: OrchestratorProcess, start_runner: Callable[..., Any], tmp_path: Path
) -> None:
    run_id = _create_run(orchestrator_server, tasks=1, names=["no_such_benchmark"])
    proc = start_runner(orchestrator_server, run_id)
    assert proc.wait(timeout=120) == 0, _runner_log(tmp_path)
    (task,) = _tasks(orchestrator_server, run_id)
    assert (task["status"], task["error_type"]) == ("failed", "benchmark_failed"), task
    assert "no benchmark ran" in task["error_message"]


def test_a_requested_benchmark_that_did_not_run_is_a_failure(
    orchestrator_server: OrchestratorProcess, start_runner: Callable[..., Any], tmp_path: Path
) -> None:
    run_id = _create_run(orchestrator_server, tasks=1, names=["fib", "fibb_typo"])
    proc = start_runner(orchestrator_server, run_id)
    assert proc.wait(timeout=120) == 0, _runner_log(tmp_path)
    (task,) = _tasks(orchestrator_server, run_id)
    assert (task["status"], task["error_type"]) == ("failed", "benchmark_failed"), task
    assert "did not run: fibb_typo" in task["error_message"]


def test_409_heartbeat_stops_the_task(
    orchestrator_server: OrchestratorProcess, start_runner: Callable[..., Any], tmp_path: Path
) -> None:
    run_id = _create_run(orchestrator_server, tasks=1, names=["sleepy"])
    proc = start_runner(orchestrator_server, run_id, env={"FAKE_BENCH_SLEEP": "120"})
    _wait_status(orchestrator_server, run_id, "running")
    with orchestrator_server.client() as http:
        assert http.post(f"/runs/{run_id}/stop").status_code == 200
    # The next heartbeat gets 409: the benchmark is killed, the claim answers done.
    assert proc.wait(timeout=30) == 0, _runner_log(tmp_path)
    assert "lost" in _runner_log(tmp_path)
    assert not list((tmp_path / "work" / "tasks").glob("run_*"))


def test_orchestrator_down_then_back(
    orchestrator_server: OrchestratorProcess, start_runner: Callable[..., Any], tmp_path: Path
) -> None:
    run_id = _create_run(orchestrator_server, tasks=1, names=["sleepy"])
    proc = start_runner(orchestrator_server, run_id, env={"FAKE_BENCH_SLEEP": "6"})
    _wait_status(orchestrator_server, run_id, "running")
    orchestrator_server.stop()
    time.sleep(8)  # heartbeats fail; the benchmark finishes while the orchestrator is away
    orchestrator_server.start()
    assert proc.wait(timeout=90) == 0, _runner_log(tmp_path)
    (task,) = _tasks(orchestrator_server, run_id)
    assert task["status"] == "completed", task


def test_sigterm_reports_in_flight_task_failed(
    orchestrator_server: OrchestratorProcess, start_runner: Callable[..., Any], tmp_path: Path
) -> None:
    run_id = _create_run(orchestrator_server, tasks=1, names=["sleepy"])
    proc = start_runner(orchestrator_server, run_id, env={"FAKE_BENCH_SLEEP": "120"})
    _wait_status(orchestrator_server, run_id, "running")
    proc.terminate()
    assert proc.wait(timeout=30) == 128 + 15, _runner_log(tmp_path)
    (task,) = _tasks(orchestrator_server, run_id)
    # runner_error is an infrastructure failure: the task waits for its second attempt.
    assert (task["status"], task["attempt"]) == ("pending", 2), task
    assert [(a["outcome"], a["error_type"]) for a in task["attempts"]] == [
        ("retried", "runner_error")
    ]


@pytest.mark.container
def test_docker_409_kills_the_container(
    orchestrator_server: OrchestratorProcess,
    start_runner: Callable[..., Any],
    tmp_path: Path,
    container_engine: str,
) -> None:
    import docker

    engine = docker.from_env()
    run_id = _create_run(orchestrator_server, tasks=1, ruby="3.1", names=["sleepy"])
    proc = start_runner(orchestrator_server, run_id, executor="docker")
    _wait_status(orchestrator_server, run_id, "running", timeout=120)
    labels = {"label": [f"cloudbench.run_id={run_id}"]}
    # "running" is reported just before the container is created and started.
    deadline = time.monotonic() + 30
    while not engine.containers.list(filters=labels) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(engine.containers.list(filters=labels)) == 1
    with orchestrator_server.client() as http:
        assert http.post(f"/runs/{run_id}/stop").status_code == 200
    assert proc.wait(timeout=30) == 0, _runner_log(tmp_path)
    assert engine.containers.list(all=True, filters=labels) == []


def test_sigterm_while_orchestrator_unreachable_exits_promptly(tmp_path: Path) -> None:
    """Retrying a claim for up to 10 minutes must not make the runner deaf to SIGTERM."""
    from tests.pg import free_port

    env = {**os.environ, "CLOUDBENCH_RUNNER_TOKEN": "t", "CLOUDBENCH_UNREACHABLE_GIVE_UP": "600"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloudbench.runner",
            "--orchestrator-url",
            f"http://127.0.0.1:{free_port()}",
            "--provider",
            "local",
            "--instance-type",
            "itest",
            "--slots",
            "1",
            "--executor",
            "host",
            "--ruby-bench",
            str(FAKE_SUITE),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    time.sleep(4)  # a few failed attempts and a backoff under way
    assert proc.poll() is None
    started = time.monotonic()
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert time.monotonic() - started < 5, out.decode()[-2000:]
    assert b"retrying in" in out


def test_benchmark_processes_do_not_get_the_runner_token(
    orchestrator_server: OrchestratorProcess, start_runner: Callable[..., Any], tmp_path: Path
) -> None:
    """Benchmarks (and the gems they load) are not ours to trust with the runner token."""
    import psutil

    run_id = _create_run(orchestrator_server, tasks=1, names=["sleepy"])
    proc = start_runner(orchestrator_server, run_id, env={"FAKE_BENCH_SLEEP": "120"})
    _wait_status(orchestrator_server, run_id, "running")
    work = str((tmp_path / "work").resolve())
    # "running" comes before the benchmark holds its CPUs: other tests' benchmarks on this
    # machine hold the same CPUs' leases, and the runner takes its turn (issue 24).
    deadline = time.monotonic() + 120
    children: list[psutil.Process] = []
    while not children and time.monotonic() < deadline:
        children = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if (p.cwd() or "").startswith(work)
        ]
        time.sleep(0.2)
    assert children, _runner_log(tmp_path)
    for child in children:
        assert "CLOUDBENCH_RUNNER_TOKEN" not in child.environ(), child.cmdline()
    proc.terminate()
    assert proc.wait(timeout=30) == 128 + 15, _runner_log(tmp_path)


def test_a_new_benchmark_is_told_at_once(
    orchestrator_server: OrchestratorProcess, start_runner: Callable[..., Any], tmp_path: Path
) -> None:
    """The progress view shows the current benchmark as soon as it runs, not at the next
    periodic heartbeat (here 60 s away)."""
    run_id = _create_run(orchestrator_server, tasks=1, names=["sleepy"])
    start_runner(
        orchestrator_server,
        run_id,
        env={"CLOUDBENCH_HEARTBEAT_INTERVAL": "60", "FAKE_BENCH_SLEEP": "40"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tasks = _tasks(orchestrator_server, run_id)
        if tasks[0]["current_benchmark"] == "sleepy":
            return
        time.sleep(0.3)
    raise AssertionError(
        f"the benchmark was not told within 30 s: {tasks}\n{_runner_log(tmp_path)}"
    )

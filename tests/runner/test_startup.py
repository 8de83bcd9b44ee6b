"""Fail fast, say why (issue 13): a runner that cannot start work exits with one line.

Real runner processes; the orchestrator (where one is needed) is a real process too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import free_port
from tests.runner.conftest import FAKE_SUITE

EXIT_STARTUP = 3


def _run_runner(
    tmp_path: Path,
    *args: str,
    url: str = "http://127.0.0.1:9",
    token: str = "t",
    env: dict[str, str] | None = None,
) -> tuple[int, str, float]:
    argv = [
        sys.executable,
        "-m",
        "cloudbench.runner",
        "--orchestrator-url",
        url,
        "--provider",
        "local",
        "--instance-type",
        "itest",
        "--slots",
        "1",
        "--work-dir",
        str(tmp_path / "work"),
        *args,
    ]
    full_env = {**os.environ, "CLOUDBENCH_RUNNER_TOKEN": token, **(env or {})}
    started = time.monotonic()
    done = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stderr, time.monotonic() - started


def _error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def test_offline_ruby_bench_fetch_fails_within_10_seconds(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 2606), on this machine or anywhere else.
    url = "https://ruby-bench.invalid/ruby/ruby-bench.git"
    code, stderr, elapsed = _run_runner(tmp_path, "--executor", "host", "--ruby-bench", url)
    assert code == EXIT_STARTUP, stderr
    line = _error_line(stderr)
    assert line.startswith(f"error: cannot fetch ruby-bench from {url}: could not resolve host")
    assert "pass --ruby-bench PATH" in line
    assert elapsed < 10, f"took {elapsed:.1f}s"


def test_unreachable_ruby_bench_host_names_the_address(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/ruby-bench.git"  # nothing listens there
    code, stderr, _ = _run_runner(tmp_path, "--executor", "host", "--ruby-bench", url)
    assert code == EXIT_STARTUP, stderr
    line = _error_line(stderr)
    assert "cannot connect to 127.0.0.1:" in line and "pass --ruby-bench PATH" in line


def test_not_a_ruby_bench_directory(tmp_path: Path) -> None:
    code, stderr, _ = _run_runner(tmp_path, "--executor", "host", "--ruby-bench", str(tmp_path))
    assert code == EXIT_STARTUP, stderr
    assert "does not look like ruby-bench" in _error_line(stderr)


def test_unusable_cpu_lease_directory_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "leases"
    blocker.write_text("a file where the lease directory should be")
    env = {"CLOUDBENCH_CPU_LEASE_DIR": str(blocker)}
    code, stderr, _ = _run_runner(
        tmp_path, "--executor", "host", "--ruby-bench", str(FAKE_SUITE), env=env
    )
    assert code == EXIT_STARTUP, stderr
    line = _error_line(stderr)
    assert f"CPU lease directory {blocker} is not usable" in line
    assert "set CLOUDBENCH_CPU_LEASE_DIR" in line


def test_docker_executor_without_an_engine(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    code, stderr, elapsed = _run_runner(
        tmp_path, "--executor", "docker", "--ruby-bench", str(FAKE_SUITE), env=env
    )
    assert code == EXIT_STARTUP, stderr
    line = _error_line(stderr)
    assert "--executor docker: no container engine answers at unix://" in line
    assert "pass --executor host" in line
    assert elapsed < 10, f"took {elapsed:.1f}s"


@pytest.mark.usefixtures("ruby")
def test_no_ruby_for_the_version_fails_the_task_and_exits(
    orchestrator_server: OrchestratorProcess, tmp_path: Path
) -> None:
    body = {"ruby_version": "9.9.9", "local": ["itest"], "per_instance_type": {"tasks": 3}}
    with orchestrator_server.client() as http:
        created = http.post("/runs", json=body)
        assert created.status_code == 201, created.text
        run_id = created.json()["run_id"]
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
    assert code == EXIT_STARTUP, stderr
    line = _error_line(stderr)
    assert line.startswith("error: no Ruby 9.9.9 on this host (found: ")
    assert "install Ruby 9.9.9" in line
    with orchestrator_server.client() as http:
        tasks = http.get(f"/runs/{run_id}/tasks").json()["tasks"]
    # It stopped after the first task instead of failing every one of them.
    tried = [t for t in tasks if t["attempts"]]
    assert len(tried) == 1, tasks
    assert tried[0]["attempts"][0]["error_type"] == "provision_failed"
    assert tried[0]["status"] == "pending" and tried[0]["attempt"] == 2  # another may have it

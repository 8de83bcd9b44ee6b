"""`cloudbench nuke` on this machine: a container a runner starts after nuke listed the
run's containers (its task had just begun) is removed with the rest, not left running.

Real: a podman container labelled as a runner labels its task's, a recorded process."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from cloudbench.nuke.local import LocalPlan, LocalProcess, execute_local, plan_local
from cloudbench.platform.state import ProcRecord, Session


def _ours(run_id: int) -> list[str]:
    done = subprocess.run(
        ["podman", "ps", "-aq", "--filter", f"label=cloudbench.run_id={run_id}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.split()


def test_a_container_started_after_the_listing_is_removed(
    container_engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDBENCH_HOME", str(tmp_path / "home"))
    run_id = 700_000_000 + secrets.randbelow(99_999_999)
    # A "runner" (its argv names cloudbench and its role, as nuke checks) of that run.
    runner = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "cloudbench", "runner"]
    )
    try:
        record = ProcRecord(
            pid=runner.pid, role="runner", create_time=psutil.Process(runner.pid).create_time()
        )
        session = Session(
            id="s1", state_dir=str(tmp_path), master_pid=0, master_create_time=0.0, run_id=run_id
        )
        plan = LocalPlan(run_id, processes=[LocalProcess(session, record)])
        assert plan_local(run_id).containers == []  # what nuke listed: no container yet
        # ... then the runner's task container starts.
        labels = ["--label", "cloudbench=1", "--label", f"cloudbench.run_id={run_id}"]
        subprocess.run(
            ["podman", "run", "-d", *labels, "docker.io/library/ruby:3.1", "sleep", "600"],
            capture_output=True,
            check=True,
            timeout=120,
        )
        assert len(_ours(run_id)) == 1
        left = execute_local(plan, grace=2.0)
        assert runner.wait(timeout=10) is not None
        assert _ours(run_id) == [] and left.is_empty, left.describe()
    finally:
        runner.kill()
        for container in _ours(run_id):
            subprocess.run(["podman", "rm", "-f", container], capture_output=True, timeout=60)

"""The heartbeat sweeper: timeouts, stale runners, and the sweeper-vs-complete race."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cloudbench.orchestrator.db.engine import make_engine, make_session_factory
from cloudbench.orchestrator.maintenance import sweep_once
from tests.orchestrator.helpers import CONFIG, claim, create_run, upload
from tests.orchestrator.test_lifecycle import result_tarball
from tests.orchestrator_inproc import OrchestratorFactory


def test_silent_task_times_out_and_stale_runner_gets_409(
    db_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(
        db_url, server="in_process", heartbeat_timeout=2, sweep_interval=0.5
    )
    admin, runner = orch.client(), orch.client(role="runner")
    body = {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 1}, "max_attempts": 1}
    run_id = create_run(admin, body)["run_id"]
    got = claim(runner)
    tid, urls = got["task"]["id"], got["presigned_urls"]
    deadline = time.monotonic() + 20
    task = {}
    while time.monotonic() < deadline:
        task = admin.get(f"/runs/{run_id}/tasks").json()["tasks"][0]
        if task["status"] == "failed":
            break
        time.sleep(0.3)
    assert task["status"] == "failed" and task["error_type"] == "timeout"
    assert "last heartbeat at" in task["error_message"]
    hb = runner.post(f"/tasks/{tid}/heartbeat", json={"runner_id": "r1", "status": "running"})
    assert hb.status_code == 409
    upload(urls["result_upload_url"], result_tarball())
    done = runner.post(
        f"/tasks/{tid}/complete",
        json={"runner_id": "r1", "lease": 1, "s3_result_key": urls["result_key"]},
    )
    assert done.status_code == 409
    run = admin.get(f"/runs/{run_id}").json()
    assert run["status"] == "completed" and run["tasks"]["failed"] == 1


# Its own OS process: the test rewrites the row the server's first sweep pass writes,
# which `serve` has written by the time it answers (a thread may not have yet).
def test_sweep_command_fails_silent_tasks(
    pg_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(pg_url, server="process", sweep_interval=3600)
    admin, runner = orch.client(), orch.client(role="runner")
    create_run(admin)
    claim(runner)
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE tasks SET heartbeat_at = now() - interval '10 minutes' WHERE lease = 1"
        )
        # The server has been up all along (else its own downtime is no runner's fault).
        conn.exec_driver_sql("UPDATE server_processes SET up_since = now() - interval '1 hour'")
    env = {**orch.env(), "CLOUDBENCH_HEARTBEAT_TIMEOUT": "120"}
    out = subprocess.run(
        [sys.executable, "-m", "cloudbench", "orchestrator", "sweep"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "timed out tasks in 1 run(s)" in out.stdout
    with engine.connect() as conn:
        statuses = conn.exec_driver_sql("SELECT status, error_type FROM tasks").all()
    # Default max_attempts 2: the timeout is retried, attempt 2 waits for a runner.
    assert ("pending", None) in statuses
    engine.dispose()


# Its own OS process: the test rewrites the row the server's first sweep pass writes,
# which `serve` has written by the time it answers (a thread may not have yet).
@pytest.mark.parametrize("attempt", range(3))
def test_sweeper_vs_late_complete_has_one_outcome(
    attempt: int, pg_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    """Many tasks, each overdue, completed while the sweeper runs: each ends exactly once."""
    orch = orchestrator_factory(pg_url, server="process", sweep_interval=3600)
    admin, runner = orch.client(), orch.client(role="runner")
    spec = {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 40}, "max_attempts": 1}
    run_id = create_run(admin, spec)["run_id"]
    claims = [claim(runner, runner_id=f"r{i}") for i in range(40)]
    for c in claims:
        upload(c["presigned_urls"]["result_upload_url"], result_tarball())
    engine = make_engine(pg_url)
    factory = make_session_factory(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE tasks SET heartbeat_at = now() - interval '5 minutes'")
        conn.exec_driver_sql("UPDATE server_processes SET up_since = now() - interval '1 hour'")

    def complete(i: int) -> int:
        c = claims[i]
        with orch.client(role="runner") as cl:
            return cl.post(
                f"/tasks/{c['task']['id']}/complete",
                json={
                    "runner_id": f"r{i}",
                    "lease": 1,
                    "s3_result_key": c["presigned_urls"]["result_key"],
                },
            ).status_code

    with ThreadPoolExecutor(9) as pool:
        sweeps = [pool.submit(sweep_once, factory, 60.0) for _ in range(3)]
        codes = list(pool.map(complete, range(len(claims))))
        for sweep in sweeps:
            sweep.result()
    assert set(codes) <= {200, 409}
    tasks = admin.get(f"/runs/{run_id}/tasks").json()["tasks"]
    by_id = {t["id"]: t for t in tasks}
    for c, code in zip(claims, codes, strict=True):
        t = by_id[c["task"]["id"]]
        # The HTTP answer and the stored outcome agree: 200 ⇔ completed, 409 ⇔ timed out.
        expected = ("completed", None) if code == 200 else ("failed", "timeout")
        assert (t["status"], t["error_type"]) == expected
    run = admin.get(f"/runs/{run_id}").json()
    assert run["status"] == "completed"
    assert run["tasks"]["completed"] + run["tasks"]["failed"] == 40
    engine.dispose()

"""A refused complete/fail releases the run lock at once (found by the chaos soak).

Before: a 409 raised after `lock_run` kept the lock until the session dependency closed,
which needs a free worker thread — and under load every worker was a request queued on
that lock. The orchestrator stopped answering runners for good. Real Postgres (row locks).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.orchestrator.helpers import CONFIG, claim, create_run
from tests.orchestrator_proc import OrchestratorProcess

ONE_TASK = {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 2}}
CONCURRENT = 120  # well above the worker thread pool (40)


def test_many_refused_completes_do_not_wedge_the_orchestrator(
    orchestrator_server: OrchestratorProcess,
) -> None:
    admin, runner = orchestrator_server.client(), orchestrator_server.client(role="runner")
    run_id = create_run(admin, ONE_TASK)["run_id"]
    got = claim(runner, runner_id="r1")
    task_id, lease = got["task"]["id"], got["task"]["lease"]
    failed = runner.post(
        f"/tasks/{task_id}/fail",
        json={
            "runner_id": "r1",
            "lease": lease,
            "error_type": "benchmark_failed",
            "error_message": "not retried",
        },
    )
    assert failed.status_code == 200, failed.text
    body = {"runner_id": "r1", "lease": lease, "s3_result_key": "results/x"}

    def late_complete(_: int) -> int:
        with orchestrator_server.client(role="runner") as client:
            client.timeout = httpx.Timeout(90)
            return client.post(f"/tasks/{task_id}/complete", json=body).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        statuses = list(pool.map(late_complete, range(CONCURRENT)))
    assert set(statuses) == {409}, sorted(set(statuses))
    # Still serving runners: the other task is claimed promptly.
    other = claim(runner, runner_id="r2")
    assert other["status"] == "assigned", other
    assert time.monotonic() - started < 80
    assert admin.get(f"/runs/{run_id}").status_code == 200

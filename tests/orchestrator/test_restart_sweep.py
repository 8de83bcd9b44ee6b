"""An orchestrator outage is not runner silence (issue 13, chaos fault 1).

Heartbeats every 1 s, HEARTBEAT_TIMEOUT=5, the orchestrator SIGKILLed and restarted: a
restart shorter than the timeout loses nothing, a longer outage still sweeps a runner
that really died, but only once it has been silent for the timeout after the restart.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from tests.orchestrator.helpers import CONFIG, claim, create_run
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess

# Its own OS process: kills and restarts the server.

ONE_TASK = {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 1}}
# Short, so the waits below (all in units of it) stay short; still 5 heartbeat periods
# and 10 sweep intervals, and longer than the server's liveness grace (2 s here).
TIMEOUT = 5.0


def _heartbeats(orch: OrchestratorProcess, tid: int, stop: threading.Event) -> None:
    """A healthy runner: a heartbeat every 1 s, retried through the outage."""
    body = {"runner_id": "r1", "lease": 1, "status": "running"}
    while not stop.is_set():
        try:
            with orch.client(role="runner") as c:
                c.post(f"/tasks/{tid}/heartbeat", json=body, timeout=2)
        except httpx.HTTPError:
            pass  # the orchestrator is down; the runner keeps trying
        stop.wait(1)


def _task(orch: OrchestratorProcess, run_id: int) -> dict[str, Any]:
    with orch.client() as admin:
        return dict(admin.get(f"/runs/{run_id}/tasks").json()["tasks"][0])


def test_restart_shorter_than_the_timeout_loses_nothing(
    db_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(
        db_url, server="process", heartbeat_timeout=TIMEOUT, sweep_interval=0.5
    )
    run_id = create_run(orch.client(), ONE_TASK)["run_id"]
    tid = claim(orch.client(role="runner"))["task"]["id"]
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeats, args=(orch, tid, stop), daemon=True)
    beat.start()
    try:
        time.sleep(2)
        orch.stop(kill=True)
        time.sleep(3)  # as before the timeout was cut from 8 s: 5/8 of it, plus start-up
        orch.start()
        # Well past the timeout, counted from the last heartbeat before the kill.
        time.sleep(TIMEOUT + 3)
        task = _task(orch, run_id)
    finally:
        stop.set()
        beat.join()
    assert task["status"] == "running", task
    assert task["attempt"] == 1 and [a["outcome"] for a in task["attempts"]] == ["running"]


def test_longer_outage_still_sweeps_a_dead_runner_after_the_timeout(
    db_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(
        db_url, server="process", heartbeat_timeout=TIMEOUT, sweep_interval=0.5
    )
    run_id = create_run(orch.client(), ONE_TASK)["run_id"]
    claim(orch.client(role="runner"))  # r1 dies right after claiming
    orch.stop(kill=True)
    time.sleep(TIMEOUT + 2)  # the outage alone is longer than the timeout
    # The server is up somewhere between these two: start() returns once it answers.
    starting = time.monotonic()
    orch.start()
    back = time.monotonic()
    time.sleep(TIMEOUT / 2)
    early = _task(orch, run_id)
    assert early["status"] == "claimed", "swept before the server was up for the timeout"
    deadline = back + TIMEOUT + 10
    task = early
    while time.monotonic() < deadline and task["status"] == "claimed":
        time.sleep(0.3)
        task = _task(orch, run_id)
    assert time.monotonic() - starting >= TIMEOUT, "swept before the timeout since start"
    assert task["status"] == "pending" and task["attempt"] == 2, task
    assert task["attempts"][0]["error_type"] == "timeout"

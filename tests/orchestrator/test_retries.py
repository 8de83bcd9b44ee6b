"""Retries by failure type, black-box over HTTP on Postgres and SQLite (issue 13)."""

from __future__ import annotations

import io
import json
import tarfile
import time
from typing import Any

import httpx

from tests.orchestrator.helpers import CONFIG, claim, create_run, upload
from tests.orchestrator.test_lifecycle import result_tarball
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess

ONE_TASK = {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 1}}


def _tasks(admin: httpx.Client, run_id: int) -> list[dict[str, Any]]:
    resp = admin.get(f"/runs/{run_id}/tasks")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["tasks"])


def _wait_status(
    admin: httpx.Client, run_id: int, status: str, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = _tasks(admin, run_id)[0]
        if task["status"] == status:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task never became {status}: {task}")


def _complete(runner: httpx.Client, got: dict[str, Any], runner_id: str) -> httpx.Response:
    urls = got["presigned_urls"]
    upload(urls["result_upload_url"], result_tarball())
    return runner.post(
        f"/tasks/{got['task']['id']}/complete",
        json={
            "runner_id": runner_id,
            "lease": got["task"]["lease"],
            "s3_result_key": urls["result_key"],
        },
    )


def _fail(
    runner: httpx.Client, got: dict[str, Any], runner_id: str, error_type: str
) -> httpx.Response:
    return runner.post(
        f"/tasks/{got['task']['id']}/fail",
        json={
            "runner_id": runner_id,
            "lease": got["task"]["lease"],
            "error_type": error_type,
            "error_message": f"{error_type} for the test",
        },
    )


def test_silent_runner_is_swept_retried_elsewhere_and_fenced(
    db_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(
        db_url, server="in_process", heartbeat_timeout=2, sweep_interval=0.3
    )
    admin, runner = orch.client(), orch.client(role="runner")
    run_id = create_run(admin, ONE_TASK)["run_id"]
    first = claim(runner, runner_id="r1", host="host-a")
    assert (first["task"]["attempt"], first["task"]["max_attempts"]) == (1, 2)
    # r1 goes silent: the sweeper puts the same task back for attempt 2.
    task = _wait_status(admin, run_id, "pending")
    assert task["attempt"] == 2 and task["max_attempts"] == 2
    [ended] = task["attempts"]
    assert ended["attempt"] == 1 and ended["outcome"] == "retried"
    assert ended["runner_id"] == "r1" and ended["host"] == "host-a"
    assert ended["error_type"] == "timeout" and "no heartbeat" in ended["error_message"]
    assert ended["started_at"] and ended["finished_at"]
    # Another runner takes it (the claim bumps the lease, fencing r1).
    second = claim(runner, runner_id="r2", host="host-b")
    assert second["task"]["id"] == first["task"]["id"]
    assert second["task"]["attempt"] == 2 and second["task"]["lease"] == 2
    stale_hb = runner.post(
        f"/tasks/{first['task']['id']}/heartbeat",
        json={"runner_id": "r1", "lease": 1, "status": "running"},
    )
    assert stale_hb.status_code == 409, stale_hb.text
    stale_done = _complete(runner, first, "r1")
    assert stale_done.status_code == 409, stale_done.text
    hb = runner.post(
        f"/tasks/{second['task']['id']}/heartbeat",
        json={"runner_id": "r2", "lease": 2, "status": "running"},
    )
    assert hb.status_code == 200, hb.text
    done = _complete(runner, second, "r2")
    assert done.status_code == 200, done.text
    task = _tasks(admin, run_id)[0]
    assert task["status"] == "completed" and task["attempt"] == 2
    outcomes = [(a["attempt"], a["outcome"], a["runner_id"]) for a in task["attempts"]]
    assert outcomes == [(1, "retried", "r1"), (2, "completed", "r2")]
    run = admin.get(f"/runs/{run_id}").json()
    assert run["status"] == "completed" and run["tasks"]["completed"] == 1


def test_max_attempts_one_fails_on_first_timeout(
    db_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(
        db_url, server="in_process", heartbeat_timeout=2, sweep_interval=0.3
    )
    admin, runner = orch.client(), orch.client(role="runner")
    run_id = create_run(admin, {**ONE_TASK, "max_attempts": 1})["run_id"]
    claim(runner)
    task = _wait_status(admin, run_id, "failed")
    assert task["error_type"] == "timeout" and task["attempt"] == 1
    assert [a["outcome"] for a in task["attempts"]] == ["failed"]
    # The sweeper finalizes the run in its next transaction, just after failing the task.
    deadline = time.monotonic() + 10
    while admin.get(f"/runs/{run_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "the run never completed"
        time.sleep(0.2)


def test_retryable_failures_retry_until_attempts_are_used_up(
    orchestrator: OrchestratorProcess,
) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, {**ONE_TASK, "max_attempts": 3})["run_id"]
    kinds = ["runner_error", "preempted", "upload_failed"]
    for n, kind in enumerate(kinds, start=1):
        got = claim(runner, runner_id=f"r{n}")
        assert got["task"]["attempt"] == n
        resp = _fail(runner, got, f"r{n}", kind)
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == ("pending" if n < 3 else "failed")
    task = _tasks(admin, run_id)[0]
    assert task["status"] == "failed" and task["error_type"] == "upload_failed"
    history = [(a["outcome"], a["error_type"]) for a in task["attempts"]]
    assert history == [
        ("retried", "runner_error"),
        ("retried", "preempted"),
        ("failed", "upload_failed"),
    ]
    assert claim(runner, runner_id="r9")["status"] == "done"


def test_result_failures_are_never_retried(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    body = {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 2}}
    run_id = create_run(admin, body)["run_id"]
    for kind in ("benchmark_failed", "executable_mismatch"):
        got = claim(runner)
        resp = _fail(runner, got, "r1", kind)
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "failed" and resp.json()["attempt"] == 1
    tasks = _tasks(admin, run_id)
    assert {t["error_type"] for t in tasks} == {"benchmark_failed", "executable_mismatch"}
    assert claim(runner)["status"] == "done"
    assert admin.get(f"/runs/{run_id}").json()["status"] == "completed"


def test_unknown_error_type_is_422_naming_the_field(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    create_run(admin, ONE_TASK)
    got = claim(runner)
    resp = _fail(runner, got, "r1", "exploded")
    assert resp.status_code == 422 and "error_type" in resp.json()["error"]


def test_retry_prefers_another_host_but_never_stalls(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    body = {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 2}}
    create_run(admin, body)
    first = claim(runner, runner_id="a-0", host="a")
    assert _fail(runner, first, "a-0", "runner_error").json()["status"] == "pending"
    # Host a is offered the other task before the one it just failed...
    other = claim(runner, runner_id="a-1", host="a")
    assert other["task"]["id"] != first["task"]["id"]
    # ...while host b gets the retry.
    retry = claim(runner, runner_id="b-0", host="b")
    assert retry["task"]["id"] == first["task"]["id"] and retry["task"]["attempt"] == 2
    assert _fail(runner, retry, "b-0", "provision_failed").json()["status"] == "failed"

    # Only the failing host left: it takes the retry rather than stall.
    create_run(admin, {**ONE_TASK, "local": ["desktop"]})
    lone = claim(runner, runner_id="a-0", host="a", instance_type="desktop")
    assert _fail(runner, lone, "a-0", "timeout").json()["status"] == "pending"
    again = claim(runner, runner_id="a-0", host="a", instance_type="desktop")
    assert again["task"]["id"] == lone["task"]["id"] and again["task"]["attempt"] == 2


def test_claim_waits_while_a_running_task_may_come_back(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    create_run(admin, ONE_TASK)
    got = claim(runner, runner_id="r1")
    waiting = claim(runner, runner_id="r2")
    assert waiting["status"] == "wait" and waiting["retry_after_seconds"] > 0
    assert _complete(runner, got, "r1").status_code == 200
    assert claim(runner, runner_id="r2")["status"] == "done"


def test_identical_fail_repeat_after_retry_is_a_no_op(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, ONE_TASK)["run_id"]
    got = claim(runner)
    assert _fail(runner, got, "r1", "runner_error").status_code == 200
    again = _fail(runner, got, "r1", "runner_error")  # a lost response, retried
    assert again.status_code == 200, again.text
    other = _fail(runner, got, "r1", "timeout")
    assert other.status_code == 409
    assert len(_tasks(admin, run_id)[0]["attempts"]) == 1


def test_stop_records_the_cancelled_attempt(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, ONE_TASK)["run_id"]
    claim(runner)
    assert admin.post(f"/runs/{run_id}/stop").status_code == 200
    task = _tasks(admin, run_id)[0]
    assert task["status"] == "cancelled"
    assert [(a["outcome"], a["error_type"]) for a in task["attempts"]] == [
        ("cancelled", "cancelled")
    ]


def test_manifest_keeps_the_attempt_history(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, ONE_TASK)["run_id"]
    first = claim(runner, runner_id="r1", host="a")
    assert _fail(runner, first, "r1", "instance_terminated").json()["status"] == "pending"
    second = claim(runner, runner_id="r2", host="b")
    assert _complete(runner, second, "r2").status_code == 200
    deadline = time.monotonic() + 30
    run = admin.get(f"/runs/{run_id}").json()
    while run["archive_state"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.2)
        run = admin.get(f"/runs/{run_id}").json()
    assert run["archive_state"] == "ready", run
    archive = httpx.get(run["gzip_url"], timeout=30)
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.loads(member.read())
    [task] = manifest["tasks"]
    assert task["status"] == "completed" and task["attempt"] == 2
    got = [
        (a["attempt"], a["outcome"], a["runner_id"], a["host"], a["error_type"])
        for a in task["attempts"]
    ]
    assert got == [
        (1, "retried", "r1", "a", "instance_terminated"),
        (2, "completed", "r2", "b", None),
    ]

"""Machine boot reports over HTTP against a real orchestrator (Postgres and SQLite).

What a cloud VM's user-data sends with curl and the runner sends later: stage, since when
(database clock, moving only on a stage change), last line and log tail; the master and
dashboard read them back per run.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from tests.orchestrator.helpers import CONFIG, create_run
from tests.orchestrator_proc import OrchestratorProcess

VM = {"instance_id": "i-0abc123", "provider": "aws", "instance_type": "c7g.medium", "alias": "c7g"}


def _machines(orchestrator: OrchestratorProcess, run_id: int) -> dict[str, Any]:
    with orchestrator.client() as admin:
        got = admin.get(f"/runs/{run_id}/machines")
    assert got.status_code == 200, got.text
    return dict(got.json())


def test_stages_since_and_last_line(orchestrator: OrchestratorProcess) -> None:
    run_id = create_run(orchestrator.client())["run_id"]
    runner = orchestrator.client(role="runner")
    first = runner.post(
        f"/runs/{run_id}/machines", json={**VM, "stage": "boot", "message": "booting"}
    )
    assert first.status_code == 200, first.text
    since = datetime.fromisoformat(first.json()["stage_since"])
    time.sleep(0.05)
    # Same stage again (a keep-alive): since stays, last_seen moves, the line stays.
    again = runner.post(f"/runs/{run_id}/machines", json={**VM, "stage": "boot"}).json()
    assert datetime.fromisoformat(again["stage_since"]) == since
    assert datetime.fromisoformat(again["last_seen_at"]) > since
    assert again["message"] == "booting"
    time.sleep(0.05)
    tail = "\n".join(f"line {n}" for n in range(30))
    failed = runner.post(
        f"/runs/{run_id}/machines",
        json={
            **VM,
            "stage": "error",
            "message": "pip: no matching distribution",
            "log_tail": tail,
        },
    )
    assert failed.status_code == 200, failed.text
    other = {**VM, "instance_id": "i-0def456", "stage": "provision", "host": "ip-10-0-1-5"}
    assert runner.post(f"/runs/{run_id}/machines", json=other).status_code == 200

    listed = _machines(orchestrator, run_id)
    assert listed["run_id"] == run_id
    by_id = {m["instance_id"]: m for m in listed["machines"]}
    assert set(by_id) == {"i-0abc123", "i-0def456"}
    dead = by_id["i-0abc123"]
    assert dead["stage"] == "error" and dead["message"] == "pip: no matching distribution"
    assert dead["log_tail"] == tail and dead["alias"] == "c7g"
    assert datetime.fromisoformat(dead["stage_since"]) > since
    assert datetime.fromisoformat(dead["first_seen_at"]) == since
    assert by_id["i-0def456"]["host"] == "ip-10-0-1-5"
    assert by_id["i-0def456"]["alias"] == "c7g"
    now = datetime.fromisoformat(listed["now"])
    assert now >= datetime.fromisoformat(dead["last_seen_at"])


def test_boot_stages_merge_and_keep_their_first_time(orchestrator: OrchestratorProcess) -> None:
    """Issue 27: each report may carry the stages reached so far; the first time of each
    stays (a keep-alive or a retried POST cannot move it), new stages add up."""
    run_id = create_run(orchestrator.client())["run_id"]
    runner = orchestrator.client(role="runner")
    path = f"/runs/{run_id}/machines"
    early = {"user_data_start": "2026-12-07T10:00:00Z", "runner_installed": "2026-12-07T10:01:30Z"}
    assert runner.post(path, json={**VM, "stage": "boot", "stages": early}).status_code == 200
    later = {
        "user_data_start": "2026-12-07T11:00:00+01:00",  # moved: ignored
        "first_claim": "2026-12-07T10:02:00.250Z",
        "first_benchmark": "2026-12-07T10:02:05Z",
    }
    got = runner.post(path, json={**VM, "stage": "running", "stages": later})
    assert got.status_code == 200, got.text
    assert runner.post(path, json={**VM, "stage": "running"}).status_code == 200  # none sent
    [machine] = _machines(orchestrator, run_id)["machines"]
    stages = {k: datetime.fromisoformat(v) for k, v in machine["stages"].items()}
    assert set(stages) == {"user_data_start", "runner_installed", "first_claim", "first_benchmark"}
    assert stages["user_data_start"] == datetime.fromisoformat("2026-12-07T10:00:00+00:00")
    assert stages["first_claim"] == datetime.fromisoformat("2026-12-07T10:02:00.250+00:00")
    other = {**VM, "instance_id": "i-0none", "stage": "boot"}
    assert runner.post(path, json=other).status_code == 200
    by_id = {m["instance_id"]: m for m in _machines(orchestrator, run_id)["machines"]}
    assert by_id["i-0none"]["stages"] == {}


def test_alias_defaults_to_type_and_runs_are_separate(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    one = create_run(admin)["run_id"]
    two = create_run(admin, {**CONFIG, "run_id": one + 7})["run_id"]
    body = {k: v for k, v in VM.items() if k != "alias"}
    assert runner.post(f"/runs/{one}/machines", json={**body, "stage": "boot"}).status_code == 200
    machines = _machines(orchestrator, one)["machines"]
    assert [m["alias"] for m in machines] == ["c7g.medium"]
    assert _machines(orchestrator, two)["machines"] == []


def test_tokens_and_bad_input(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin)["run_id"]
    path = f"/runs/{run_id}/machines"
    body = {**VM, "stage": "boot"}
    assert orchestrator.client(token="nope").post(path, json=body).status_code == 401
    # Only machines report: the admin token is refused, any token reads.
    assert admin.post(path, json=body).status_code == 403
    assert runner.get(path).status_code == 200
    unknown = runner.post("/runs/1/machines", json=body)
    assert unknown.status_code == 404 and "error" in unknown.json()
    cases = [
        ({**body, "stage": "rebooting"}, "stage"),
        ({**body, "instance_id": "i 1; rm"}, "instance_id"),
        ({**body, "provider": "gcp"}, "provider"),
        ({**body, "log_tail": "x" * 16_001}, "log_tail"),
        ({**body, "message": "a\x00b"}, "message"),
        ({**body, "surprise": 1}, "surprise"),
        ({**body, "stages": {"Bad Name": "2026-12-07T10:00:00Z"}}, "stages"),
        ({**body, "stages": {"first_claim": "yesterday"}}, "stages"),
        ({**body, "stages": {f"s{n}": "2026-12-07T10:00:00Z" for n in range(33)}}, "stages"),
    ]
    for bad, field in cases:
        got = runner.post(path, json=bad)
        assert got.status_code == 422, (field, got.text)
        assert field in got.json()["error"], (field, got.text)
    assert _machines(orchestrator, run_id)["machines"] == []


def _claim_on(runner: Any, host: str) -> dict[str, Any]:
    body = {
        "provider": "aws",
        "instance_type": "c7g.medium",
        "alias": "c7g",
        "runner_id": f"{host}-0",
        "host": host,
    }
    got = runner.post("/tasks/claim", json=body)
    assert got.status_code == 200, got.text
    return dict(got.json())


AWS_RUN = {
    "ruby_version": "3.4.7",
    "per_instance_type": {"tasks": 1},
    "aws": [{"instance_type": "c7g.medium", "alias": "c7g"}],
}


def test_a_lost_machines_task_goes_to_another_machine_now(
    orchestrator: OrchestratorProcess,
) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, AWS_RUN)["run_id"]
    task = _claim_on(runner, "ip-10-0-1-5")["task"]
    report = {**VM, "stage": "running", "host": "ip-10-0-1-5"}
    assert runner.post(f"/runs/{run_id}/machines", json=report).status_code == 200
    path = f"/runs/{run_id}/machines/i-0abc123/lost"
    # Only the master (admin) says a machine is lost.
    assert runner.post(path, json={"reason": "gone"}).status_code == 403
    assert (
        admin.post(f"/runs/{run_id}/machines/i-0nope/lost", json={"reason": "gone"}).status_code
        == 404
    )
    assert admin.post(path, json={}).status_code == 422
    lost = admin.post(path, json={"reason": "EC2 state terminated"})
    assert lost.status_code == 200, lost.text
    assert lost.json() == {"instance_id": "i-0abc123", "retried": [task["id"]], "failed": []}
    [row] = admin.get(f"/runs/{run_id}/tasks").json()["tasks"]
    assert row["status"] == "pending" and row["attempt"] == 2
    ended = row["attempts"][0]
    assert ended["error_type"] == "instance_terminated" and ended["outcome"] == "retried"
    assert "instance i-0abc123 lost: EC2 state terminated" in ended["error_message"]
    # The other machine of the type gets it at once.
    again = _claim_on(runner, "ip-10-0-1-6")
    assert again["status"] == "assigned" and again["task"]["id"] == task["id"]
    machine = {m["instance_id"]: m for m in _machines(orchestrator, run_id)["machines"]}
    assert machine["i-0abc123"]["stage"] == "error"
    assert machine["i-0abc123"]["message"] == "lost: EC2 state terminated"


def test_without_attempts_left_the_task_fails_and_the_run_ends(
    orchestrator: OrchestratorProcess,
) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, {**AWS_RUN, "max_attempts": 1})["run_id"]
    task = _claim_on(runner, "ip-10-0-1-5")["task"]
    report = {**VM, "stage": "error", "message": "boom", "host": "ip-10-0-1-5"}
    assert runner.post(f"/runs/{run_id}/machines", json=report).status_code == 200
    lost = admin.post(f"/runs/{run_id}/machines/i-0abc123/lost", json={"reason": "silent"})
    assert lost.json()["failed"] == [task["id"]], lost.text
    run = admin.get(f"/runs/{run_id}").json()
    assert run["status"] == "completed" and run["tasks"]["failed"] == 1
    # Its own error report stays the machine's line.
    [machine] = _machines(orchestrator, run_id)["machines"]
    assert machine["message"] == "boom"


def test_stopping_one_instance_type_leaves_the_others_running(
    orchestrator: OrchestratorProcess,
) -> None:
    """What the master does when every VM of a type failed: that type stops, not the run."""
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin)["run_id"]  # laptop (alias lap) and desktop, 2 tasks each
    body = {"provider": "local", "instance_type": "laptop", "runner_id": "r1"}
    held = runner.post("/tasks/claim", json=body).json()["task"]
    stop = {"provider": "local", "alias": "lap", "reason": "every VM of lap failed"}
    assert (
        admin.post(f"/runs/{run_id}/stop", json={"provider": "gcp", "alias": "lap"}).status_code
        == 422
    )
    assert runner.post(f"/runs/{run_id}/stop", json=stop).status_code == 403
    got = admin.post(f"/runs/{run_id}/stop", json=stop)
    assert got.status_code == 200, got.text
    run = got.json()
    assert run["status"] == "running"
    assert run["tasks"]["removed"] == 1 and run["tasks"]["cancelled"] == 1
    assert run["tasks"]["pending"] == 2  # desktop's
    tasks = {t["id"]: t for t in admin.get(f"/runs/{run_id}/tasks").json()["tasks"]}
    assert tasks[held["id"]]["status"] == "cancelled"
    assert "instance type stopped: every VM of lap failed" in tasks[held["id"]]["error_message"]
    # Its runner learns at the next heartbeat.
    beat = runner.post(
        f"/tasks/{held['id']}/heartbeat",
        json={"runner_id": "r1", "lease": held["lease"], "status": "running"},
    )
    assert beat.status_code == 409
    # The last type stopped: nothing is left, the run ends as usual.
    last = admin.post(f"/runs/{run_id}/stop", json={"provider": "local", "alias": "desktop"})
    assert last.json()["status"] == "completed" and last.json()["archive_state"] != "none"

"""Full lifecycle over HTTP against a real orchestrator process (Postgres and SQLite)."""

from __future__ import annotations

import io
import tarfile
import time

import httpx

from tests.orchestrator.helpers import CONFIG, claim, create_run, upload
from tests.orchestrator_proc import OrchestratorProcess


def result_tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in [
            ("output.txt", b"ran"),
            ("output.json", b"{}"),
            ("metadata.json", b"{}"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    return buf.getvalue()


def test_create_claim_heartbeat_complete(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    created = create_run(admin, {**CONFIG, "per_instance_type": {"tasks": 1}})
    run_id = created["run_id"]
    assert created["tasks_created"] == 2
    assert {(t["instance_type"], t["alias"]) for t in created["tasks"]} == {
        ("laptop", "lap"),
        ("desktop", "desktop"),
    }
    assert abs(run_id - time.time()) < 60

    for itype in ("laptop", "desktop"):
        got = claim(runner, runner_id=f"r-{itype}", instance_type=itype)
        assert got["status"] == "assigned"
        task, urls = got["task"], got["presigned_urls"]
        assert task["lease"] == 1 and task["ruby_version"] == "3.4.7"
        assert task["benchmarks"]["categories"] == ["headline"]
        hb = runner.post(
            f"/tasks/{task['id']}/heartbeat",
            json={
                "runner_id": f"r-{itype}",
                "lease": 1,
                "status": "running",
                "current_benchmark": "fib",
                "progress_pct": 50,
            },
        )
        assert hb.status_code == 200, hb.text
        assert hb.json()["status"] == "running"
        assert hb.json()["current_benchmark"] == "fib"
        # A heartbeat that leaves fields out keeps them.
        hb2 = runner.post(
            f"/tasks/{task['id']}/heartbeat",
            json={"runner_id": f"r-{itype}", "status": "uploading"},
        )
        assert hb2.json()["current_benchmark"] == "fib"
        assert hb2.json()["heartbeat_status"] == "uploading"
        upload(urls["result_upload_url"], result_tarball())
        done = runner.post(
            f"/tasks/{task['id']}/complete",
            json={"runner_id": f"r-{itype}", "lease": 1, "s3_result_key": urls["result_key"]},
        )
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "completed"

    assert claim(runner)["status"] == "done"
    run = admin.get(f"/runs/{run_id}").json()
    assert run["status"] == "completed"
    assert run["tasks"]["completed"] == 2 and run["tasks"]["total"] == 2
    assert run["finished_at"] is not None
    # The archive is built in the background and then offered as a signed URL.
    deadline = time.monotonic() + 30
    while run["archive_state"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.2)
        run = admin.get(f"/runs/{run_id}").json()
    assert run["archive_state"] == "ready", run
    archive = httpx.get(run["gzip_url"], timeout=30)
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert "manifest.json" in names
    assert any(n.endswith("/output.json") and n.startswith("lap-") for n in names)


def test_complete_requires_uploaded_result(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    create_run(admin)
    got = claim(runner)
    tid, key = got["task"]["id"], got["presigned_urls"]["result_key"]
    resp = runner.post(f"/tasks/{tid}/complete", json={"runner_id": "r1", "s3_result_key": key})
    assert resp.status_code == 422
    assert "no result uploaded" in resp.json()["error"]
    wrong = runner.post(
        f"/tasks/{tid}/complete", json={"runner_id": "r1", "s3_result_key": "results/x.tgz"}
    )
    assert wrong.status_code == 422 and "issued" in wrong.json()["error"]


def test_fencing_order_and_idempotent_repeats(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    create_run(admin)
    tid = claim(runner)["task"]["id"]
    hb = {"runner_id": "r1", "status": "running"}
    assert runner.post("/tasks/999999/heartbeat", json=hb).status_code == 404
    assert runner.post(f"/tasks/{tid}/heartbeat", json={**hb, "runner_id": "x"}).status_code == 403
    assert runner.post(f"/tasks/{tid}/heartbeat", json={**hb, "lease": 7}).status_code == 409
    fail = {"runner_id": "r1", "lease": 1, "error_type": "benchmark_failed", "error_message": "x"}
    first = runner.post(f"/tasks/{tid}/fail", json=fail)
    assert first.status_code == 200 and first.json()["status"] == "failed"
    again = runner.post(f"/tasks/{tid}/fail", json=fail)
    assert again.status_code == 200 and again.json()["finished_at"] == first.json()["finished_at"]
    other = runner.post(f"/tasks/{tid}/fail", json={**fail, "error_message": "different"})
    assert other.status_code == 409
    assert runner.post(f"/tasks/{tid}/heartbeat", json=hb).status_code == 409


def test_idempotent_create_and_conflicts(orchestrator: OrchestratorProcess) -> None:
    admin = orchestrator.client()
    body = {**CONFIG, "run_id": 1700000000, "extra_setting": True}
    first = admin.post("/runs", json=body)
    assert first.status_code == 201 and first.json()["ignored"] == ["extra_setting"]
    # Same body after normalisation (string vs object form, legacy key) → same run.
    same = {
        "run_id": 1700000000,
        "ruby_version": "3.4.7",
        "runs_per_instance_type": 2,
        "local": [{"instance_type": "laptop", "alias": "lap"}, {"instance_type": "desktop"}],
    }
    second = admin.post("/runs", json=same)
    assert second.status_code == 200, second.text
    assert second.json()["tasks"] == first.json()["tasks"]
    different = admin.post("/runs", json={**same, "ruby_version": "3.3.0"})
    assert different.status_code == 409
    # Without a run_id: the current second, or the next free one.
    a = create_run(admin)["run_id"]
    b = create_run(admin)["run_id"]
    assert b > a


def test_stop_run_early(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, {**CONFIG, "per_instance_type": {"tasks": 3}})["run_id"]
    tid = claim(runner)["task"]["id"]
    stopped = admin.post(f"/runs/{run_id}/stop")
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["status"] == "cancelled"
    assert body["tasks"]["removed"] == 5 and body["tasks"]["cancelled"] == 1
    hb = runner.post(f"/tasks/{tid}/heartbeat", json={"runner_id": "r1", "status": "running"})
    assert hb.status_code == 409
    assert claim(runner)["status"] == "done"
    run_claim = runner.post(
        f"/runs/{run_id}/tasks/claim",
        json={"provider": "local", "instance_type": "laptop", "runner_id": "r1"},
    )
    assert run_claim.json() == {"status": "done"}
    assert admin.post(f"/runs/{run_id}/stop").status_code == 200  # no-op
    tasks = admin.get(f"/runs/{run_id}/tasks").json()["tasks"]
    assert [t["status"] for t in tasks] == ["cancelled"]


def test_claim_by_alias_and_run(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    body = {
        **CONFIG,
        "local": [{"instance_type": "m", "alias": "a"}, {"instance_type": "m", "alias": "b"}],
    }
    run_id = create_run(admin, body)["run_id"]
    got = runner.post(
        f"/runs/{run_id}/tasks/claim",
        json={"provider": "local", "instance_type": "m", "runner_id": "r", "alias": "b"},
    ).json()
    assert got["task"]["alias"] == "b"
    missing = runner.post(
        "/runs/123/tasks/claim", json={"provider": "local", "instance_type": "m", "runner_id": "r"}
    )
    assert missing.status_code == 404

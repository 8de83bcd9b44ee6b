"""Results are written once (issue 13): a stale runner cannot replace a completed result.

Black-box over HTTP against a real orchestrator process on its local signed-URL storage,
on Postgres and SQLite. The S3 side (conditional writes) is tests/orchestrator/storage/
test_s3.py against moto's server.
"""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

import httpx

from tests.orchestrator.helpers import CONFIG, claim, create_run
from tests.orchestrator_inproc import OrchestratorFactory

ONE_TASK = {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 1}}


def _tarball(text: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in [("output.txt", text), ("output.json", b"{}"), ("metadata.json", b"{}")]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def _wait(admin: httpx.Client, path: str, key: str, value: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got: dict[str, Any] = admin.get(path).json()
        current = got["tasks"][0] if "tasks" in got and key == "status" else got
        if current.get(key) == value:
            return current
        time.sleep(0.2)
    raise AssertionError(f"{path}: {key} never became {value}")


def _archived_output(run: dict[str, Any]) -> bytes:
    archive = httpx.get(run["gzip_url"], timeout=30)
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        [name] = [n for n in tar.getnames() if n.endswith("/output.txt")]
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def test_stale_runner_cannot_replace_a_completed_result(
    db_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(
        db_url, server="in_process", heartbeat_timeout=2, sweep_interval=0.3
    )
    admin, runner = orch.client(), orch.client(role="runner")
    run_id = create_run(admin, ONE_TASK)["run_id"]
    stale = claim(runner, runner_id="r1")
    _wait(admin, f"/runs/{run_id}/tasks", "status", "pending")  # r1 went silent: swept
    fresh = claim(runner, runner_id="r2")
    task_id = fresh["task"]["id"]
    urls = fresh["presigned_urls"]
    assert urls["result_key"] != stale["presigned_urls"]["result_key"]
    assert httpx.put(urls["result_upload_url"], content=_tarball(b"r2's result")).is_success
    done = runner.post(
        f"/tasks/{task_id}/complete",
        json={"runner_id": "r2", "lease": 2, "s3_result_key": urls["result_key"]},
    )
    assert done.status_code == 200, done.text

    # The completed result's URL is dead for everyone holding it...
    replay = httpx.put(urls["result_upload_url"], content=_tarball(b"overwritten"))
    assert replay.status_code == 412, replay.text
    # ...and the stale runner's own URL only reaches its own (never completed) key.
    own = httpx.put(stale["presigned_urls"]["result_upload_url"], content=_tarball(b"stale"))
    assert own.is_success
    retarget = stale["presigned_urls"]["result_upload_url"].replace(
        stale["presigned_urls"]["result_key"], urls["result_key"]
    )
    assert httpx.put(retarget, content=_tarball(b"forged")).status_code == 403
    late = runner.post(
        f"/tasks/{task_id}/complete",
        json={
            "runner_id": "r1",
            "lease": 1,
            "s3_result_key": stale["presigned_urls"]["result_key"],
        },
    )
    assert late.status_code == 409, late.text

    run = _wait(admin, f"/runs/{run_id}", "archive_state", "ready")
    assert _archived_output(run) == b"r2's result"
    [task] = admin.get(f"/runs/{run_id}/tasks").json()["tasks"]
    assert task["result_key"] == urls["result_key"]

"""A result that does not parse fails its attempt at /complete (issue 25 item 4).

Black-box over HTTP on Postgres and SQLite, with real tarballs uploaded through the
signed URLs: `/complete` used to check only that the object existed, so a run whose
every tarball was garbage reported every task completed.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from typing import Any

import httpx
import pytest

from tests.orchestrator.helpers import CONFIG, claim, create_run, upload
from tests.orchestrator.test_lifecycle import result_tarball
from tests.orchestrator_proc import OrchestratorProcess

ONE_TASK = {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 1}}


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _flipped_crc() -> bytes:
    data = bytearray(result_tarball())
    data[-8] ^= 0xFF
    return bytes(data)


GARBAGE = {
    "not_gzip": (b"this is not a tarball", "not a gzip-compressed tar"),
    "gzip_not_tar": (gzip.compress(b"x" * 5000), "not a gzip-compressed tar"),
    "bad_crc": (_flipped_crc(), "not a gzip-compressed tar"),
    "no_output_json": (_tar_gz({"metadata.json": b"{}", "output.txt": b"x"}), "no output.json"),
    "no_metadata": (_tar_gz({"output.json": b"{}"}), "no metadata.json"),
    "output_not_json": (
        _tar_gz({"output.json": b"RESULT 9.000", "metadata.json": b"{}"}),
        "output.json is not JSON",
    ),
}


def _complete(runner: httpx.Client, got: dict[str, Any], data: bytes) -> httpx.Response:
    urls = got["presigned_urls"]
    upload(urls["result_upload_url"], data)
    body = {"runner_id": "r1", "lease": got["task"]["lease"], "s3_result_key": urls["result_key"]}
    return runner.post(f"/tasks/{got['task']['id']}/complete", json=body)


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_unusable_result_fails_the_attempt(orchestrator: OrchestratorProcess, case: str) -> None:
    data, reason = GARBAGE[case]
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, ONE_TASK)["run_id"]
    resp = _complete(runner, claim(runner), data)
    assert resp.status_code == 422, resp.text
    assert reason in resp.json()["error"] and "upload_failed" in resp.json()["error"]
    [task] = admin.get(f"/runs/{run_id}/tasks").json()["tasks"]
    assert task["status"] == "pending"  # retried: max_attempts is 2
    assert task["attempts"][0]["error_type"] == "upload_failed"
    # The second attempt is garbage too: the task fails, the run never counts it done.
    resp = _complete(runner, claim(runner), data)
    assert resp.status_code == 422 and "no attempts left" in resp.json()["error"]
    run = admin.get(f"/runs/{run_id}").json()
    assert run["status"] == "completed"
    assert (run["tasks"]["completed"], run["tasks"]["failed"]) == (0, 1)


def test_a_real_result_still_completes(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, ONE_TASK)["run_id"]
    resp = _complete(runner, claim(runner), result_tarball())
    assert resp.status_code == 200, resp.text
    assert admin.get(f"/runs/{run_id}").json()["tasks"]["completed"] == 1

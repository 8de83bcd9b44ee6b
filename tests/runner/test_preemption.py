"""Spot interruption (issue 27): a cloud runner that sees its notice fails its running task
`preempted` in time, stops claiming and says why; the task is retried on another machine.

The clouds' metadata services cannot exist here: small HTTP servers on loopback stand in
for them (EC2's IMDSv2 with its token handshake, Azure's Scheduled Events). Runners,
orchestrator (Postgres) and the fake ruby-bench suite are real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudbench.runner.preempt import InterruptionWatch, azure_notice
from tests.orchestrator_proc import OrchestratorProcess
from tests.runner.conftest import FAKE_SUITE

NOTICE = {"action": "terminate", "time": "2026-12-07T10:02:00Z"}


class _Ec2(BaseHTTPRequestHandler):
    notice: bool = False
    lifecycle = "spot"

    def do_PUT(self) -> None:
        ok = self.path == "/latest/api/token"
        self._send(200 if ok else 400, "tok" if ok else "")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "tok":
            return self._send(401, "")
        values = {
            "/latest/meta-data/instance-type": "c7g.large",
            "/latest/meta-data/instance-id": "i-0spot",
            "/latest/meta-data/instance-life-cycle": type(self).lifecycle,
        }
        if type(self).notice:
            values["/latest/meta-data/spot/instance-action"] = json.dumps(NOTICE)
        self._send(200 if self.path in values else 404, values.get(self.path, ""))

    def _send(self, code: int, body: str) -> None:
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


class _Azure(_Ec2):
    events: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        if self.headers.get("Metadata") != "true" or "scheduledevents" not in self.path:
            return self._send(400, "")
        self._send(200, json.dumps({"DocumentIncarnation": 1, "Events": type(self).events}))


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def ec2() -> Iterator[tuple[str, type[_Ec2]]]:
    handler = type("Ec2", (_Ec2,), {"notice": False})
    for url in _serve(handler):
        yield url, handler


def test_aws_notice_is_read_with_a_token_and_absent_is_404(ec2: tuple[str, type[_Ec2]]) -> None:
    url, handler = ec2
    seen: list[str] = []
    watch = InterruptionWatch("aws", seen.append, endpoint=url)
    assert watch.check() is None
    handler.notice = True
    assert watch.check() == "EC2 spot interruption notice: terminate at 2026-12-07T10:02:00Z"
    assert not InterruptionWatch("local", seen.append).enabled


def test_azure_preempt_event_is_the_notice() -> None:
    class handler(_Azure):
        events: list[dict[str, Any]] = []

    for url in _serve(handler):
        with httpx.Client(base_url=url) as client:
            assert azure_notice(client) is None
            handler.events = [
                {"EventId": "a", "EventType": "Freeze", "NotBefore": ""},
                {"EventId": "b", "EventType": "Preempt", "NotBefore": "Mon, 07 Dec 2026 10:02 GMT"},
            ]
            assert azure_notice(client) == (
                "Azure Scheduled Events: Preempt (Spot eviction) not before "
                "Mon, 07 Dec 2026 10:02 GMT"
            )


def _start(
    orch: OrchestratorProcess, run_id: int, imds: str, work: Path, sleep: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CLOUDBENCH_RUNNER_TOKEN": orch.runner_token,
        "CLOUDBENCH_HEARTBEAT_INTERVAL": "1",
        "CLOUDBENCH_PASS_ENV": "FAKE_BENCH_SLEEP",
        "FAKE_BENCH_SLEEP": sleep,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds,
        "CLOUDBENCH_INSTANCE_ID": f"i-{work.name}",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloudbench.runner",
            "--orchestrator-url",
            orch.url,
            "--provider",
            "aws",
            "--instance-type",
            "c7g.large",
            "--alias",
            "spotty",
            "--run-id",
            str(run_id),
            "--slots",
            "1",
            "--executor",
            "host",
            "--ruby-bench",
            str(FAKE_SUITE),
            "--work-dir",
            str(work),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _task(orch: OrchestratorProcess, run_id: int) -> dict[str, Any]:
    with orch.client() as http:
        [task] = http.get(f"/runs/{run_id}/tasks").json()["tasks"]
    return dict(task)


@pytest.mark.usefixtures("ruby")
def test_a_noticed_task_fails_preempted_and_completes_on_another_machine(
    orchestrator_server: OrchestratorProcess, ec2: tuple[str, type[_Ec2]], tmp_path: Path
) -> None:
    orch, (imds, handler) = orchestrator_server, ec2
    body = {
        "ruby_version": "system",
        "per_instance_type": {"tasks": 1},
        "max_attempts": 2,
        "aws": [{"instance_type": "c7g.large", "alias": "spotty", "capacity": "spot"}],
        "benchmarks": {
            "names": ["sleepy"],
            "executables": ["interp"],
            "warmup_iterations": 0,
            "bench_iterations": 1,
        },
    }
    with orch.client() as http:
        created = http.post("/runs", json=body)
    assert created.status_code == 201, created.text
    run_id = int(created.json()["run_id"])
    first = _start(orch, run_id, imds, tmp_path / "a", "120", tmp_path / "a.log")
    deadline = time.monotonic() + 60
    while _task(orch, run_id)["heartbeat_status"] != "running":
        assert time.monotonic() < deadline and first.poll() is None, (
            tmp_path / "a.log"
        ).read_text()
        time.sleep(0.3)
    handler.notice = True
    noticed = time.monotonic()
    assert first.wait(timeout=60) == 0, (tmp_path / "a.log").read_text()[-3000:]
    # Polled every 5 s, acted on at once: far inside EC2's two minutes.
    assert time.monotonic() - noticed < 20
    task = _task(orch, run_id)
    assert (task["status"], task["attempts"][0]["error_type"]) == ("pending", "preempted"), task
    with orch.client() as http:
        [machine] = http.get(f"/runs/{run_id}/machines").json()["machines"]
    assert machine["stage"] == "error"
    assert machine["message"].startswith("preempted: EC2 spot interruption notice: terminate")

    handler.notice = False  # another spot VM, no notice
    second = _start(orch, run_id, imds, tmp_path / "b", "0", tmp_path / "b.log")
    assert second.wait(timeout=120) == 0, (tmp_path / "b.log").read_text()[-3000:]
    task = _task(orch, run_id)
    assert task["status"] == "completed", task
    history = [(a["outcome"], a["error_type"]) for a in task["attempts"]]
    assert history == [("retried", "preempted"), ("completed", None)]
    (path,) = [p for p in orch.state_dir.rglob("*.tar.gz") if str(p).endswith(task["result_key"])]
    with tarfile.open(path) as tar:
        member = tar.extractfile("metadata.json")
        assert member is not None
        metadata = json.loads(member.read())
    assert metadata["instance"]["lifecycle"] == "spot"  # read from the metadata service

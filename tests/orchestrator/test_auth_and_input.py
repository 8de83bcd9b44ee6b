"""Auth matrix for every endpoint, and bad input → 4xx with a message, never 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.orchestrator.helpers import CONFIG, claim, create_run
from tests.orchestrator_proc import OrchestratorProcess

HB = {"runner_id": "r1", "status": "running"}
ADMIN_ONLY = [("POST", "/runs", CONFIG), ("POST", "/runs/{run}/stop", None)]
READS = [("GET", "/runs", None), ("GET", "/runs/{run}", None), ("GET", "/runs/{run}/tasks", None)]
RUNNER_ONLY = [
    ("POST", "/tasks/claim", {"provider": "local", "instance_type": "zz", "runner_id": "x"}),
    (
        "POST",
        "/runs/{run}/tasks/claim",
        {"provider": "local", "instance_type": "zz", "runner_id": "x"},
    ),
    ("POST", "/tasks/{task}/heartbeat", HB),
    ("POST", "/tasks/{task}/upload_urls", {"runner_id": "r1"}),
    ("POST", "/tasks/{task}/complete", {"runner_id": "r1", "s3_result_key": "k"}),
    ("POST", "/tasks/{task}/fail", {"runner_id": "r1", "error_type": "x", "error_message": "y"}),
]


@pytest.fixture
def ids(orchestrator: OrchestratorProcess) -> dict[str, int]:
    run = create_run(orchestrator.client())["run_id"]
    task = claim(orchestrator.client(role="runner"))["task"]["id"]
    return {"run": run, "task": task}


def _call(
    orch: OrchestratorProcess,
    token: str | None,
    method: str,
    path: str,
    body: Any,
    ids: dict[str, int],
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(
        method, orch.url + path.format(**ids), json=body, headers=headers, timeout=30
    )


def test_auth_matrix(orchestrator: OrchestratorProcess, ids: dict[str, int]) -> None:
    """Every endpoint: no token / wrong token → 401; the wrong role → 403; the right one works."""
    orch = orchestrator
    # Runner endpoints first: the admin-only stop at the end would cancel the claimed task.
    for method, path, body in RUNNER_ONLY + READS + ADMIN_ONLY:
        where = f"{method} {path}"
        assert _call(orch, None, method, path, body, ids).status_code == 401, where
        bad = _call(orch, "not-the-token", method, path, body, ids)
        assert bad.status_code == 401 and "invalid token" in bad.json()["error"], where
        as_admin = _call(orch, orch.admin_token, method, path, body, ids)
        as_runner = _call(orch, orch.runner_token, method, path, body, ids)
        if (method, path, body) in ADMIN_ONLY:
            assert as_runner.status_code == 403, where
            assert as_admin.status_code in (200, 201), (where, as_admin.text)
        elif (method, path, body) in READS:
            assert (as_admin.status_code, as_runner.status_code) == (200, 200), where
        else:
            assert as_admin.status_code == 403, where
            assert as_runner.status_code < 500 and as_runner.status_code != 401, where


def test_open_endpoints(orchestrator: OrchestratorProcess) -> None:
    assert httpx.get(orchestrator.url + "/up").status_code == 200
    doc = httpx.get(orchestrator.url + "/openapi.json")
    assert doc.status_code == 200 and "/tasks/claim" in doc.json()["paths"]
    # FastAPI's /docs and /redoc pull unpinned CDN scripts onto the dashboard's origin.
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        resp = httpx.get(orchestrator.url + path)
        assert resp.status_code == 404 and "cdn" not in resp.text, path


def test_openapi_documents_every_error_status(orchestrator: OrchestratorProcess) -> None:
    doc = httpx.get(orchestrator.url + "/openapi.json").json()
    assert "ErrorBody" in doc["components"]["schemas"]
    checked = 0
    for path, item in doc["paths"].items():
        if not path.startswith(("/runs", "/tasks")):
            continue
        for method, operation in item.items():
            responses = operation["responses"]
            for status in ("401", "403", "404", "409", "413", "422", "503"):
                assert status in responses, (method, path, status)
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ErrorBody"), (method, path, status)
            checked += 1
    assert checked >= 10


BAD_RUNS = [
    ({}, "ruby_version"),
    ({**CONFIG, "ruby_version": 3}, "ruby_version"),
    ({**CONFIG, "per_instance_type": {"tasks": 0}}, "per_instance_type.tasks"),
    ({**CONFIG, "per_instance_type": {"tasks": -3}}, "per_instance_type.tasks"),
    ({**CONFIG, "per_instance_type": {"tasks": 1, "instances": 0}}, "instances"),
    ({**CONFIG, "per_instance_type": {"tasks": "many"}}, "per_instance_type.tasks"),
    ({"ruby_version": "3.4.7", "per_instance_type": {"tasks": 1}}, "at least one instance type"),
    ({**CONFIG, "gcp": ["n2-standard-2"]}, "unknown provider 'gcp'"),
    ({**CONFIG, "local": [{"alias": "x"}]}, "local.0.instance_type"),
    ({**CONFIG, "local": [42]}, "local.0"),
    ({**CONFIG, "local": ["../../etc"]}, "local.0"),
    ({**CONFIG, "benchmarks": {"executables": ["jit"]}}, "benchmarks.executables"),
    ({**CONFIG, "benchmarks": {"executables": []}}, "benchmarks.executables"),
    ({**CONFIG, "run_id": -1}, "run_id"),
    # Bounds (issue 25): 283 bytes once made 200k tasks.
    ({**CONFIG, "per_instance_type": {"tasks": 10_001}}, "per_instance_type.tasks"),
    (
        {**CONFIG, "per_instance_type": {"tasks": 10_000}, "aws": ["a"]},
        "per_instance_type.tasks: 10000 tasks x 3 instance types = 30000",
    ),
    (
        {**CONFIG, "per_instance_type": {"tasks": 7_000}, "aws": ["a", "b"]},
        "at most 20000 per run",
    ),
    ({**CONFIG, "local": [f"t{i}" for i in range(201)]}, "local: List should have at most 200"),
    (
        {**CONFIG, "local": [f"t{i}" for i in range(150)], "aws": [f"t{i}" for i in range(51)]},
        "201 instance types; at most 200 per run",
    ),
    # extra_args reach ruby-bench only through its allowlist: nothing names a program,
    # a harness directory or a file to require (each was a root shell on every runner).
    ({**CONFIG, "benchmarks": {"extra_args": ["-e", "pwn::/bin/sh -c id"]}}, "extra_args"),
    ({**CONFIG, "benchmarks": {"extra_args": ["-epwn::/bin/sh"]}}, "benchmarks.executables"),
    ({**CONFIG, "benchmarks": {"extra_args": ["--harness=/tmp/h"]}}, "benchmarks.extra_args"),
    ({**CONFIG, "benchmarks": {"extra_args": ["--harn=/tmp/h"]}}, "not an allowed"),
    ({**CONFIG, "benchmarks": {"extra_args": ["--with_pre-init=/tmp/x.rb"]}}, "extra_args"),
    ({**CONFIG, "benchmarks": {"extra_args": ["--chruby=x::3.4"]}}, "extra_args"),
    ({**CONFIG, "benchmarks": {"extra_args": ["--yjit_opts=-r/tmp/x"]}}, "extra_args"),
    ({**CONFIG, "benchmarks": {"extra_args": ["--out_path=/etc"]}}, "extra_args"),
    ({**CONFIG, "benchmarks": {"extra_args": ["--rss", "--", "-e"]}}, "extra_args"),
    ({**CONFIG, "benchmarks": {"extra_args": ["--excludes=a;id"]}}, "benchmark names"),
    ({**CONFIG, "benchmarks": {"extra_args": ["--excludes", "fib"]}}, "one token"),
    ({**CONFIG, "benchmarks": {"extra_args": ["fib"]}}, "benchmarks.names"),
    ({**CONFIG, "benchmarks": {"extra_args": ["--warmup=3"]}}, "warmup_iterations"),
    ([1, 2], "JSON object"),
]


@pytest.mark.parametrize("body,needle", BAD_RUNS)
def test_bad_run_bodies(orchestrator: OrchestratorProcess, body: Any, needle: str) -> None:
    resp = orchestrator.client().post("/runs", json=body)
    assert resp.status_code in (400, 422), resp.text
    assert needle in resp.json()["error"]


def test_allowed_extra_args_reach_the_run(orchestrator: OrchestratorProcess) -> None:
    allowed = ["--rss", "--pvalue", "--once", "--excludes=fib,nbody", "--yjit-stats=ratio_in_yjit"]
    body = {**CONFIG, "benchmarks": {"extra_args": allowed}}
    run_id = create_run(orchestrator.client(), body)["run_id"]
    assigned = claim(orchestrator.client(role="runner"))
    assert assigned["task"]["run_id"] == run_id
    assert assigned["task"]["benchmarks"]["extra_args"] == allowed


def test_malformed_and_huge_bodies(orchestrator: OrchestratorProcess) -> None:
    admin = orchestrator.client()
    resp = admin.post("/runs", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith("request body is not valid JSON at character 1: ")
    runner = orchestrator.client(role="runner")
    resp = runner.post(
        "/tasks/claim", content=b'{"a": ', headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"], resp.text
    huge = {**CONFIG, "padding": "x" * (2 << 20)}
    assert admin.post("/runs", json=huge).status_code == 413

    def chunks() -> Iterator[bytes]:  # no content-length: the cap still holds while streaming
        for _ in range(40):
            yield b" " * 65536

    streamed = admin.post("/runs", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_bad_runner_inputs(orchestrator: OrchestratorProcess, ids: dict[str, int]) -> None:
    runner = orchestrator.client(role="runner")
    task = ids["task"]
    cases = [
        (f"/tasks/{task}/heartbeat", {"runner_id": "r1", "status": "sleeping"}, 422),
        (f"/tasks/{task}/heartbeat", {**HB, "progress_pct": 140}, 422),
        (f"/tasks/{task}/heartbeat", {**HB, "progress_pct": "half"}, 422),
        (f"/tasks/{task}/heartbeat", {"status": "running"}, 422),
        ("/tasks/abc/heartbeat", HB, 422),
        ("/tasks/99999999/complete", {"runner_id": "r1", "s3_result_key": "k"}, 404),
        ("/tasks/claim", {"provider": "gcp", "instance_type": "x", "runner_id": "r"}, 422),
        ("/tasks/claim", {"provider": "local"}, 422),
    ]
    for path, body, status in cases:
        resp = runner.post(path, json=body)
        assert resp.status_code == status, (path, body, resp.text)
        assert resp.json()["error"]
    assert orchestrator.client().get("/runs/424242").status_code == 404
    # Nothing stored was lost: the claimed task is still there, still ours.
    assert runner.post(f"/tasks/{task}/heartbeat", json=HB).status_code == 200


def test_nul_characters_are_never_a_500(orchestrator: OrchestratorProcess) -> None:
    """PostgreSQL text cannot hold NUL: a runner's report with one (crash output) is kept
    with the NUL replaced, a runner_id with one is refused, and nothing answers 500."""
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, {**CONFIG, "local": ["laptop"]})["run_id"]
    bad_claim = {"provider": "local", "instance_type": "laptop", "runner_id": "r\x001"}
    resp = runner.post("/tasks/claim", json=bad_claim)
    assert resp.status_code == 422 and "runner_id" in resp.json()["error"], resp.text
    tid = claim(runner)["task"]["id"]
    hb = {**HB, "message": "seg\x00fault", "current_benchmark": "fi\x00b"}
    resp = runner.post(f"/tasks/{tid}/heartbeat", json=hb)
    assert resp.status_code == 200, resp.text
    assert resp.json()["heartbeat_message"] == "seg\ufffdfault"
    assert resp.json()["current_benchmark"] == "fi\ufffdb"
    # A result failure, so the task ends here (a runner_error would be retried).
    failure = {"runner_id": "r1", "error_type": "benchmark_failed", "error_message": "core\x00dump"}
    resp = runner.post(f"/tasks/{tid}/fail", json=failure)
    assert resp.status_code == 200, resp.text
    assert resp.json()["error_message"] == "core\ufffddump"
    # The identical retry is still the documented 200 no-op.
    assert runner.post(f"/tasks/{tid}/fail", json=failure).status_code == 200
    assert admin.get(f"/runs/{run_id}/tasks").json()["tasks"][0]["status"] == "failed"


def test_stop_completed_run_conflicts(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    spec = {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 1}}
    run_id = create_run(admin, spec)["run_id"]
    tid = claim(runner)["task"]["id"]
    runner.post(
        f"/tasks/{tid}/fail",
        json={"runner_id": "r1", "error_type": "benchmark_failed", "error_message": "boom"},
    )
    assert admin.get(f"/runs/{run_id}").json()["status"] == "completed"
    resp = admin.post(f"/runs/{run_id}/stop")
    assert resp.status_code == 409 and "completed" in resp.json()["error"]


def test_server_refuses_to_start_without_tokens(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBENCH_")}
    env["CLOUDBENCH_STATE_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "cloudbench", "orchestrator", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "CLOUDBENCH_ADMIN_TOKEN" in out.stderr and "Traceback" not in out.stderr


def test_unreachable_database_is_one_clear_line(tmp_path: Any) -> None:
    import os
    import secrets
    import subprocess
    import sys

    from tests.pg import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBENCH_")}
    env.update(
        CLOUDBENCH_STATE_DIR=str(tmp_path),
        CLOUDBENCH_ADMIN_TOKEN=secrets.token_urlsafe(24),
        CLOUDBENCH_RUNNER_TOKEN=secrets.token_urlsafe(24),
        CLOUDBENCH_DATABASE_URL=f"postgresql+psycopg://u:hunter2@127.0.0.1:{free_port()}/x",
    )
    out = subprocess.run(
        [sys.executable, "-m", "cloudbench", "orchestrator", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "CLOUDBENCH_DATABASE_URL" in out.stderr and "Connection refused" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout and "Traceback" not in out.stderr

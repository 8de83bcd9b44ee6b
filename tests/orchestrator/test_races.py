"""Lock-order races between runner reports and an early stop (Postgres, READ COMMITTED)."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.orchestrator.helpers import CONFIG, claim, create_run, upload
from tests.orchestrator.test_lifecycle import result_tarball
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess

# Its own OS process: races between the server process and the database.


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _wait_for_lock_waiters(conn: psycopg.Connection, count: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        waiting = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()
        if waiting is not None and waiting[0] >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"never saw {count} backends waiting on a lock")


@pytest.mark.parametrize("report", ["complete", "fail"])
def test_report_racing_stop_is_not_a_deadlock(
    report: str, pg_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    """Stop holds the run and waits for a task row while complete/fail holds that task and
    waits for the run: the classic lock-order deadlock. One outcome must win cleanly
    (stop 200, the runner 409), never a 500 from Postgres' deadlock detector."""
    orch = orchestrator_factory(pg_url, server="process")
    admin, runner = orch.client(), orch.client(role="runner")
    run_id = create_run(admin, {**CONFIG, "local": ["laptop"]})["run_id"]
    got = claim(runner)
    task_id = got["task"]["id"]
    upload(got["presigned_urls"]["result_upload_url"], result_tarball())
    pending = [t["id"] for t in admin.get(f"/runs/{run_id}/tasks").json()["tasks"]]
    pending.remove(task_id)
    body = (
        {"runner_id": "r1", "lease": 1, "s3_result_key": got["presigned_urls"]["result_key"]}
        if report == "complete"
        else {"runner_id": "r1", "lease": 1, "error_type": "benchmark_failed", "error_message": "x"}
    )

    def call(method: str, path: str, token: str, json: object = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, orch.url + path, json=json, headers=headers, timeout=60)

    with (
        psycopg.connect(_dsn(pg_url)) as blocker,
        psycopg.connect(_dsn(pg_url), autocommit=True) as watcher,
        ThreadPoolExecutor(2) as pool,
    ):
        # Hold the pending task so stop parks right after locking the run.
        blocker.execute("SELECT id FROM tasks WHERE id = %s FOR UPDATE", (pending[0],))
        stop: Future[httpx.Response] = pool.submit(
            call, "POST", f"/runs/{run_id}/stop", orch.admin_token
        )
        _wait_for_lock_waiters(watcher, 1)
        reported: Future[httpx.Response] = pool.submit(
            call, "POST", f"/tasks/{task_id}/{report}", orch.runner_token, body
        )
        _wait_for_lock_waiters(watcher, 2)
        blocker.rollback()
        stop_resp, report_resp = stop.result(), reported.result()

    assert stop_resp.status_code == 200, (stop_resp.text, orch.log_tail())
    assert report_resp.status_code == 409, (report_resp.text, orch.log_tail())
    task = admin.get(f"/runs/{run_id}/tasks").json()["tasks"][0]
    assert task["status"] == "cancelled"
    assert admin.get(f"/runs/{run_id}").json()["status"] == "cancelled"


def test_concurrent_creates_never_500(
    pg_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    """Runs created at the same second pick the same "next free" id; the loser of the
    unique index must move on (or, with the same explicit run_id, get the existing run)."""
    orch = orchestrator_factory(pg_url, server="process")

    def create(body: dict[str, object]) -> int:
        with orch.client() as admin:
            return admin.post("/runs", json=body).status_code

    explicit = {**CONFIG, "run_id": 1234}
    bodies = [CONFIG] * 12 + [explicit] * 12
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(create, bodies))
    assert sorted(codes[:12]) == [201] * 12, codes
    assert sorted(codes[12:]) == [200] * 11 + [201], codes
    runs = orch.client().get("/runs").json()["runs"]
    assert len({r["run_id"] for r in runs}) == 13


def test_identical_completes_in_flight_together_are_both_200(
    orchestrator_process: OrchestratorProcess,
) -> None:
    """A runner retrying a complete whose answer was lost must not be told 409."""
    orchestrator = orchestrator_process
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    create_run(admin, {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 1}})
    got = claim(runner)
    tid, urls = got["task"]["id"], got["presigned_urls"]
    upload(urls["result_upload_url"], result_tarball())
    body = {"runner_id": "r1", "lease": 1, "s3_result_key": urls["result_key"]}

    def complete(_: int) -> int:
        with orchestrator.client(role="runner") as c:
            return c.post(f"/tasks/{tid}/complete", json=body).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(complete, range(6)))
    assert codes == [200] * 6

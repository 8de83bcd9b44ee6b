"""Dashboard pages and fragments against a real orchestrator process (Postgres, SQLite)."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import Request, Response
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from cloudbench.orchestrator.dashboard import auth
from cloudbench.orchestrator.dashboard.view import build_view, heartbeat_level
from cloudbench.orchestrator.db import runs as db_runs
from cloudbench.orchestrator.db.models import Base, Task
from cloudbench.orchestrator.settings import OrchestratorSettings
from cloudbench.protocol import RunSpec
from tests.dashboard.helpers import csrf_of, heartbeat, login
from tests.orchestrator.helpers import CONFIG, claim, create_run
from tests.orchestrator_proc import OrchestratorProcess

XSS = "<script>alert(1)</script>"
XSS_ERROR = '<img src=x onerror="alert(2)">'
TASK_ROW = r'<tr id="task-(\d+)"'


def counts_in(html: str) -> dict[str, int]:
    """The run panel's per-status counts (the first counts list on the page)."""
    panel = html.split('id="run-counts"', 1)[1].split("</ul>", 1)[0]
    found = re.findall(r'data-status="(\w+)">\w+ <b>(\d+)</b>', panel)
    return {status: int(n) for status, n in found}


def claimed(runner: httpx.Client, runner_id: str, itype: str = "laptop") -> dict[str, Any]:
    task = dict(claim(runner, runner_id=runner_id, instance_type=itype)["task"])
    task["runner_id"] = runner_id
    return task


def test_login_required_cookie_flags_and_logout(orchestrator: OrchestratorProcess) -> None:
    anon = httpx.Client(base_url=orchestrator.url, timeout=30)
    resp = anon.get("/")
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    assert anon.get("/dashboard/fragment").status_code == 401
    # The bearer token is for the API; the dashboard only takes its own session cookie.
    assert orchestrator.client().get("/dashboard/fragment").status_code == 401
    assert anon.post("/login", data={"token": orchestrator.runner_token}).status_code == 401
    assert anon.post("/login", data={"token": "nope"}).status_code == 401
    anon.cookies.set("cloudbench_session", "forged.value.sig")
    assert anon.get("/").status_code == 303

    resp = httpx.post(f"{orchestrator.url}/login", data={"token": orchestrator.admin_token})
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie  # public_url is plain http in tests

    client = login(orchestrator)
    page = client.get("/")
    assert page.status_code == 200 and "No runs yet" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.post("/logout").status_code == 403
    assert client.post("/logout", data={"csrf_token": "0" * 64}).status_code == 403
    out = client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/").status_code == 303


def test_grouping_counts_selection_and_escaping(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    first = create_run(admin, {**CONFIG, "run_id": 1001})["run_id"]
    run_id = create_run(admin, {**CONFIG, "run_id": 1002})["run_id"]
    busy, broken = claimed(runner, "r-busy"), claimed(runner, "r-broken")
    assert busy["run_id"] == broken["run_id"] == first  # the oldest run's tasks go first
    heartbeat(runner, busy, status="running", current_benchmark=XSS, progress_pct=50, message=XSS)
    failed = runner.post(
        f"/tasks/{broken['id']}/fail",
        json={
            "runner_id": "r-broken",
            "lease": 1,
            "error_type": "benchmark_failed",
            "error_message": XSS_ERROR,
        },
    )
    assert failed.status_code == 200, failed.text

    client = login(orchestrator)
    latest = client.get("/").text
    assert f"<h2>Run {run_id}</h2>" in latest and counts_in(latest)["pending"] == 4
    assert client.get("/?run_id=999").status_code == 404

    html = client.get(f"/dashboard/fragment?run_id={first}").text
    assert counts_in(html) == {
        "pending": 2,
        "claimed": 0,
        "running": 1,
        "completed": 0,
        "failed": 1,
        "cancelled": 0,
        "removed": 0,
    }
    groups = re.findall(r'data-group="([^"]+)"', html)
    assert groups == ["local/desktop/desktop", "local/laptop/lap"]
    laptop = html.split('data-group="local/laptop/lap"', 1)[1]
    assert "2/2" not in laptop and "1/2 finished" in laptop
    assert f'id="task-{busy["id"]}"' in laptop and f'id="task-{broken["id"]}"' in laptop
    assert "r-busy" in laptop and "s ago" in laptop and "benchmark_failed" in laptop
    # User- and runner-supplied text is escaped wherever it appears.
    assert "<script>alert" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html


def test_end_run_early_needs_csrf_and_stops(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin)["run_id"]
    task = claimed(runner, "r1")
    client, other = login(orchestrator), login(orchestrator)
    csrf = csrf_of(client.get("/").text)
    stop_url = f"/dashboard/runs/{run_id}/stop"

    assert client.post(stop_url).status_code == 403
    assert client.post(stop_url, data={"csrf_token": "f" * 64}).status_code == 403
    # A token is bound to its session: another session's token is refused.
    other_csrf = csrf_of(other.get("/").text)
    assert other_csrf != csrf
    assert client.post(stop_url, data={"csrf_token": other_csrf}).status_code == 403
    assert admin.get(f"/runs/{run_id}").json()["status"] == "running"
    anon = httpx.post(f"{orchestrator.url}{stop_url}", data={"csrf_token": csrf})
    assert anon.status_code == 303 and anon.headers["location"] == "/login"

    resp = client.post(stop_url, data={"csrf_token": csrf})
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/?run_id={run_id}&notice=stopped"
    page = client.get(resp.headers["location"]).text
    assert "Run stopped" in page and 'id="stop-run"' not in page
    assert counts_in(page)["cancelled"] == 1 and counts_in(page)["removed"] == 3
    run = admin.get(f"/runs/{run_id}").json()
    assert run["status"] == "cancelled" and run["tasks"]["removed"] == 3
    hb = runner.post(
        f"/tasks/{task['id']}/heartbeat", json={"runner_id": "r1", "status": "running"}
    )
    assert hb.status_code == 409

    again = client.post(stop_url, data={"csrf_token": csrf})
    assert again.headers["location"].endswith("notice=already-stopped")
    # The archive is built in the background; the page then offers the download.
    deadline = time.monotonic() + 30
    while "Download results.tar.gz" not in page and time.monotonic() < deadline:
        time.sleep(0.3)
        page = client.get(f"/dashboard/fragment?run_id={run_id}").text
    assert 'data-final="1"' in page and "Download results.tar.gz" in page


def test_fragment_queries_do_not_grow_with_tasks(tmp_path: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'n1.sqlite3'}")
    Base.metadata.create_all(engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def queries_for(tasks: int) -> int:
        with Session(engine) as session:
            spec = RunSpec.model_validate(
                {**CONFIG, "run_id": 5000 + tasks, "per_instance_type": {"tasks": tasks}}
            )
            run, _ = db_runs.create_run(session=session, spec=spec)
            session.commit()
            statements.clear()
            view = build_view(session, run, None, 120.0)
            assert sum(g.total for g in view.groups) == 2 * tasks
            return len(statements)

    # Group stats, one page of rows, the run's own, its machines' boot reports (issue 23):
    # the same for 4 tasks or 400.
    assert queries_for(2) == queries_for(200) <= 4


def test_heartbeat_highlight_near_timeout() -> None:
    running, done = Task(status="running"), Task(status="completed")
    assert heartbeat_level(running, 10, 120) == ""
    assert heartbeat_level(running, 70, 120) == "warn"
    assert heartbeat_level(running, 130, 120) == "late"
    assert heartbeat_level(done, 500, 120) == ""
    assert heartbeat_level(running, None, 120) == ""


def test_session_cookie_is_secure_behind_https() -> None:
    settings = OrchestratorSettings(
        admin_token="a" * 20, runner_token="r" * 20, public_url="https://bench.example"
    )
    request = Request(
        {"type": "http", "app": SimpleNamespace(state=SimpleNamespace(settings=settings))}
    )
    response = Response()
    auth.start_session(request, response)
    cookie = response.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie


def test_a_retried_task_shows_its_attempt(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    create_run(admin, {**CONFIG, "local": ["laptop"], "per_instance_type": {"tasks": 1}})
    first = claimed(runner, "r-first")
    page = login(orchestrator).get("/").text
    assert "attempt 1/2" not in page and "attempt 2/2" not in page  # quiet until a retry
    failed = runner.post(
        f"/tasks/{first['id']}/fail",
        json={
            "runner_id": "r-first",
            "lease": 1,
            "error_type": "runner_error",
            "error_message": "disk full",
        },
    )
    assert failed.status_code == 200 and failed.json()["status"] == "pending"
    claimed(runner, "r-second")
    row = login(orchestrator).get("/").text.split(f'id="task-{first["id"]}"', 1)[1]
    row = row.split("</tr>", 1)[0]
    assert "attempt 2/2" in row and "r-second" in row


def test_machines_show_stage_since_and_last_line(orchestrator: OrchestratorProcess) -> None:
    """Issue 23: per VM, its boot stage, since when, its last line and a failure's tail."""
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, {**CONFIG, "run_id": 1201})["run_id"]
    vm = {"provider": "aws", "instance_type": "c7g.medium", "alias": "g3"}
    reports = [
        {**vm, "instance_id": "i-0up", "stage": "provision", "message": "installing docker.io"},
        {
            **vm,
            "instance_id": "i-0bad",
            "stage": "error",
            "message": XSS,
            "log_tail": "E: Unable to locate package docker.io",
        },
    ]
    for body in reports:
        got = runner.post(f"/runs/{run_id}/machines", json=body)
        assert got.status_code == 200, got.text
    html = login(orchestrator).get(f"/dashboard/fragment?run_id={run_id}").text
    section = html.split('id="machines"', 1)[1].split("</section>", 1)[0]
    rows = dict(re.findall(r'data-instance="([^"]+)">(.*?)</tr>', section, flags=re.DOTALL))
    assert set(rows) == {"i-0up", "i-0bad"}
    assert ">provision</span>" in rows["i-0up"] and "installing docker.io" in rows["i-0up"]
    assert re.search(r'machine-since">\s*\d+s', rows["i-0up"]), rows["i-0up"]
    assert ">error</span>" in rows["i-0bad"]
    assert "E: Unable to locate package docker.io" in rows["i-0bad"]
    assert "<script>alert" not in section and "&lt;script&gt;" in section
    # A run without reporting machines has no such section.
    other = create_run(admin, {**CONFIG, "run_id": 1202})["run_id"]
    assert (
        'id="machines"' not in login(orchestrator).get(f"/dashboard/fragment?run_id={other}").text
    )


def test_large_runs_are_paged_not_sent_whole(orchestrator: OrchestratorProcess) -> None:
    """A 200k-task run once made a 120 MB page that the dashboard re-polled: rows come in
    pages of 200 while counts and progress still cover the whole run."""
    admin = orchestrator.client()
    small = create_run(admin, {**CONFIG, "per_instance_type": {"tasks": 150}})["run_id"]
    big = create_run(admin, {**CONFIG, "per_instance_type": {"tasks": 2_500}})["run_id"]
    client = login(orchestrator)

    def fragment(run_id: int, page: int) -> str:
        resp = client.get(f"/dashboard/fragment?run_id={run_id}&page={page}")
        assert resp.status_code == 200, resp.text
        return resp.text

    first = fragment(big, 1)
    assert first.count('<tr id="task-') == 200
    assert counts_in(first)["pending"] == 5_000
    assert "Tasks 1\u2013200 of 5000 (page 1 of 25)" in first and 'rel="next"' in first
    last = fragment(big, 25)
    assert last.count('<tr id="task-') == 200 and 'rel="next"' not in last
    # Past the end is the last page: its rows and pager (the run's elapsed time, also on
    # the page, may have ticked between the two requests).
    beyond = fragment(big, 999)
    assert re.findall(TASK_ROW, beyond) == re.findall(TASK_ROW, last) != []
    assert "Tasks 4801\u20135000 of 5000 (page 25 of 25)" in beyond
    # Page size does not grow with the run: 5,000 tasks send no more than 300 do.
    whole_small = fragment(small, 1)
    assert whole_small.count('<tr id="task-') == 200 and "of 300" in whole_small
    assert len(first) < 1.2 * len(whole_small)
    page = client.get(f"/?run_id={big}&page=2")
    assert "page=2" in page.text and page.text.count('<tr id="task-') == 200
    assert client.get(f"/dashboard/fragment?run_id={big}&page=0").status_code == 422

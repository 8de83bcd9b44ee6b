"""A finished run's report, linked from the dashboard and built by the orchestrator from
the archive it already has (a real orchestrator, real tarballs, `cloudbench report` in
its own process, Debian's Chromium)."""

from __future__ import annotations

import io
import json
import tarfile
import time

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, expect

from tests.dashboard.helpers import login
from tests.dashboard.test_browser import LIVE_TIMEOUT_MS, browser, log_in  # noqa: F401
from tests.orchestrator.helpers import claim, create_run, upload
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess

CONFIG = {
    "ruby_version": "3.4.7",
    "per_instance_type": {"tasks": 3, "instances": 1},
    "local": [{"instance_type": "laptop", "alias": "lap"}, "desktop"],
}
SPEED = {"laptop": 1.5, "desktop": 1.0}  # the truth: the laptop is 1.5x as fast


def _tarball(task: dict[str, object], rng: np.random.Generator) -> bytes:
    speed = SPEED[str(task["instance_type"])]
    raw = {
        "yjit": {
            f"bench_{b}": {
                "warmup": [0.2],
                "maxrss": 50 << 20,
                "bench": (0.1 * (b + 1) / speed * np.exp(rng.normal(0, 0.02, 5))).tolist(),
            }
            for b in range(4)
        }
    }
    meta = {
        "task_id": task["id"],
        "hostname": f"host-{task['id']}",
        "cpu_model": "test CPU",
        "ruby_description": "ruby 3.4.7 (2025-10-08 revision 7a5688e2a2) +PRISM",
        "started_at": "2026-11-27T10:00:00+00:00",
        "finished_at": "2026-11-27T10:06:00+00:00",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in [
            ("output.json", {"metadata": {}, "raw_data": raw}),
            ("metadata.json", meta),
        ]:
            data = json.dumps(body).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _finished_run(orch: OrchestratorProcess) -> int:
    admin, runner = orch.client(), orch.client(role="runner")
    run_id = int(create_run(admin, CONFIG)["run_id"])
    rng = np.random.default_rng(5)
    for itype in ("laptop", "desktop"):
        for _ in range(3):
            got = claim(runner, runner_id=f"r-{itype}", instance_type=itype)
            task, urls = got["task"], got["presigned_urls"]
            upload(urls["result_upload_url"], _tarball(task, rng))
            done = runner.post(
                f"/tasks/{task['id']}/complete",
                json={
                    "runner_id": f"r-{itype}",
                    "lease": task["lease"],
                    "s3_result_key": urls["result_key"],
                },
            )
            assert done.status_code == 200, done.text
    deadline = time.monotonic() + 60
    while admin.get(f"/runs/{run_id}").json()["archive_state"] != "ready":
        assert time.monotonic() < deadline, "the archive was never built"
        time.sleep(0.2)
    return run_id


@pytest.mark.browser
def test_dashboard_links_the_finished_runs_report(
    browser: Browser,  # noqa: F811
    sqlite_url: str,
    orchestrator_factory: OrchestratorFactory,
) -> None:
    # In this process: the report is `cloudbench report` in its own process either way.
    orch = orchestrator_factory(sqlite_url, server="in_process")
    run_id = _finished_run(orch)
    # Not logged in: no report.
    anonymous = httpx.get(f"{orch.url}/dashboard/runs/{run_id}/report", timeout=30)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
    missing = login(orch).get(f"/dashboard/runs/{run_id + 999}/report")
    assert missing.status_code == 404

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, orch)
    page.goto(f"{orch.url}/?run_id={run_id}")
    link = page.locator("#report-link")
    expect(link).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    href = link.get_attribute("href")
    assert href == f"/dashboard/runs/{run_id}/report"
    page.goto(f"{orch.url}{href}", timeout=120_000)
    page.wait_for_function("document.body.dataset.charts !== undefined", timeout=60_000)
    answer = page.locator("#answer").inner_text()
    assert "Fastest: lap" in answer, answer
    # Served again from storage, not rebuilt: the same bytes.
    client = login(orch)
    first = client.get(href, timeout=120)
    assert first.status_code == 200 and "sandbox" in first.headers["content-security-policy"]
    assert client.get(href, timeout=120).content == first.content

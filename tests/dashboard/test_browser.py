"""The dashboard in Debian's Chromium: live heartbeats, then "End run early"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from tests.dashboard.helpers import heartbeat
from tests.orchestrator.helpers import CONFIG, claim, create_run
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The page polls every 3 s; allow a few rounds.
LIVE_TIMEOUT_MS = 12_000


@pytest.fixture
def browser() -> Iterator[Browser]:
    # Fail, never skip: a missing browser must not look like a passing suite.
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: apt-get install -y chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def log_in(page: Page, orch: OrchestratorProcess) -> None:
    page.goto(f"{orch.url}/")
    expect(page).to_have_url(f"{orch.url}/login")
    page.fill("#token", orch.admin_token)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{orch.url}/")


def watch_heartbeats(page: Page, runner: httpx.Client, task: dict[str, Any]) -> None:
    row = page.locator(f"#task-{task['id']}")
    expect(row.locator(".hb-status")).to_have_text("boot")
    expect(row.locator(".details")).to_have_text("<script>alert(1)</script>")
    # A marker on window survives fragment swaps but not a reload.
    page.evaluate("window.__sameDocument = true")
    heartbeat(runner, task, status="running", current_benchmark="fib", progress_pct=40)
    expect(row.locator(".hb-status")).to_have_text("running", timeout=LIVE_TIMEOUT_MS)
    expect(row.locator(".bench")).to_have_text("fib")
    heartbeat(runner, task, status="uploading")
    expect(row.locator(".hb-status")).to_have_text("uploading", timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"


def end_run_early(page: Page, admin: httpx.Client, run_id: int, url: str) -> list[str]:
    """Press the button twice: dismiss the confirm (nothing happens), then accept it."""
    dialogs: list[str] = []

    def answer(dialog: Dialog, accept: bool) -> None:
        dialogs.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, accept=False))
    page.click("#stop-run")
    expect(page.locator("#run-status")).to_have_text("running")
    assert admin.get(f"/runs/{run_id}").json()["status"] == "running"

    page.once("dialog", lambda d: answer(d, accept=True))
    page.click("#stop-run")
    expect(page).to_have_url(f"{url}/?run_id={run_id}&notice=stopped")
    return dialogs


@pytest.mark.browser
def test_live_heartbeats_and_end_run_early(
    browser: Browser,
    sqlite_url: str,
    orchestrator_factory: OrchestratorFactory,
    tmp_path: Path,
) -> None:
    orch = orchestrator_factory(sqlite_url, server="in_process")
    admin, runner = orch.client(), orch.client(role="runner")
    run_id = create_run(admin, {**CONFIG, "per_instance_type": {"tasks": 1}})["run_id"]
    task = dict(claim(runner, runner_id="r1")["task"], runner_id="r1")
    heartbeat(runner, task, status="boot", message="<script>alert(1)</script>")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, orch)
    watch_heartbeats(page, runner, task)
    page.screenshot(path=str(tmp_path / "dashboard-running.png"), full_page=True)

    dialogs = end_run_early(page, admin, run_id, orch.url)
    # Only our confirm ever opened: the script in the heartbeat message never ran.
    assert len(dialogs) == 2 and all("End run" in m for m in dialogs), dialogs
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator(f"#task-{task['id']} .task-status")).to_have_text("cancelled")
    expect(page.locator("#stop-run")).to_have_count(0)
    assert admin.get(f"/runs/{run_id}").json()["status"] == "cancelled"

    # The archive finishes in the background and the link appears without a reload.
    expect(page.get_by_text("Download results.tar.gz")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 0

"""Helpers for dashboard tests: a logged-in cookie client and page scraping."""

from __future__ import annotations

import re

import httpx

from tests.orchestrator_proc import OrchestratorProcess

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def login(orch: OrchestratorProcess) -> httpx.Client:
    """A cookie client (no bearer header) logged in to the dashboard."""
    client = httpx.Client(base_url=orch.url, timeout=30)
    resp = client.post("/login", data={"token": orch.admin_token})
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == "/"
    return client


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def heartbeat(runner: httpx.Client, task: dict[str, object], **body: object) -> None:
    payload = {"runner_id": task["runner_id"], "lease": task["lease"], **body}
    resp = runner.post(f"/tasks/{task['id']}/heartbeat", json=payload)
    assert resp.status_code == 200, resp.text

"""Small helpers for orchestrator API tests."""

from __future__ import annotations

from typing import Any

import httpx

CONFIG: dict[str, Any] = {
    "ruby_version": "3.4.7",
    "per_instance_type": {"tasks": 2, "instances": 1},
    "local": [{"instance_type": "laptop", "alias": "lap"}, "desktop"],
}


def create_run(admin: httpx.Client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = admin.post("/runs", json=body or CONFIG)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def claim(
    runner: httpx.Client, runner_id: str = "r1", instance_type: str = "laptop", **extra: Any
) -> dict[str, Any]:
    body = {"provider": "local", "instance_type": instance_type, "runner_id": runner_id, **extra}
    resp = runner.post("/tasks/claim", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def upload(url: str, data: bytes) -> None:
    resp = httpx.put(url, content=data, timeout=30)
    assert resp.status_code in (200, 201, 204), resp.text

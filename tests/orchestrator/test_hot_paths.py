"""Issue 10's hot paths: one statement per claim and heartbeat, no wedge at 256 clients."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, event

from cloudbench.orchestrator.cli import default_workers
from cloudbench.orchestrator.db import hot
from cloudbench.orchestrator.errors import Conflict, Forbidden, NotFound
from cloudbench.protocol import HeartbeatStatus
from tests.orchestrator.helpers import create_run
from tests.orchestrator_proc import OrchestratorProcess


def _statements(engine: Any) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def grab(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            seen.append(statement)

    return seen


def test_claim_and_heartbeat_are_one_statement(orchestrator: OrchestratorProcess) -> None:
    spec = {"ruby_version": "3.4.7", "per_instance_type": {"tasks": 1}, "local": ["box"]}
    create_run(orchestrator.client(), spec)
    engine = create_engine(orchestrator.database_url)
    seen = _statements(engine)
    with engine.begin() as conn:
        outcome = hot.claim(conn=conn, provider="local", instance_type="box", runner_id="r1")
        assert outcome.claimed is not None
        assert len(seen) == 1 and seen[0].lstrip().upper().startswith("UPDATE TASKS")
        task_id, lease = outcome.claimed.task_id, outcome.claimed.lease
        fields = {"heartbeat_status": HeartbeatStatus.running, "progress_pct": 12.5}
        row = hot.heartbeat(conn=conn, task_id=task_id, runner_id="r1", lease=lease, fields=fields)
        assert len(seen) == 2, seen
        assert (row.status, row.progress_pct, row.lease) == ("running", 12.5, lease)
        assert row.started_at is not None and row.heartbeat_at is not None
        # The refusals keep their order and meaning (the slow path may read more).
        for runner, bad_lease, error in [
            ("r2", lease, Forbidden),
            ("r1", lease + 1, Conflict),
        ]:
            with pytest.raises(error):
                hot.heartbeat(
                    conn=conn, task_id=task_id, runner_id=runner, lease=bad_lease, fields=fields
                )
        with pytest.raises(NotFound):
            hot.heartbeat(conn=conn, task_id=task_id + 99, runner_id="r1", lease=1, fields=fields)
    engine.dispose()


def test_serve_defaults_to_one_worker_per_cpu_on_postgres(monkeypatch: Any) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 7)
    assert default_workers("postgresql+psycopg://u@h/db") == 7
    assert default_workers("sqlite:///x.sqlite3") == 1


async def _burst(
    url: str, token: str, calls: list[tuple[str, dict[str, Any]]]
) -> list[tuple[int, float, Any]]:
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=len(calls))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=180, limits=limits) as c:

        async def one(path: str, body: dict[str, Any]) -> tuple[int, float, Any]:
            start = time.monotonic()
            resp = await c.post(path, json=body)
            json = resp.headers.get("content-type", "").startswith("application/json")
            return resp.status_code, time.monotonic() - start, resp.json() if json else resp.text

        return await asyncio.gather(*(one(p, b) for p, b in calls))


def test_256_concurrent_runners_do_not_wedge_the_server(pg_url: str, tmp_path: Path) -> None:
    """Main wedged here: sessions waiting for a thread to close them held the pool's
    connections that the routes in those threads waited for ("QueuePool limit reached")."""
    orch = OrchestratorProcess(database_url=pg_url, state_dir=tmp_path, workers=None)
    # serve's own default (a process per CPU): slow to start on a loaded machine.
    orch.start(timeout=300)
    try:
        _no_wedge(orch)
    finally:
        orch.stop()


def _no_wedge(orch: OrchestratorProcess) -> None:
    spec = {"ruby_version": "3.4.7", "per_instance_type": {"tasks": 256}, "local": ["box"]}
    create_run(orch.client(), spec | {"max_attempts": 1})
    claim = {"provider": "local", "instance_type": "box"}
    calls = [("/tasks/claim", claim | {"runner_id": f"r{i}"}) for i in range(256)]
    results = asyncio.run(_burst(orch.url, orch.runner_token, calls))
    assert {s for s, _, _ in results} == {200}, orch.log_tail()
    held = {
        body["task"]["id"]: (call["runner_id"], body["task"]["lease"])
        for (_, _, body), (_, call) in zip(results, calls, strict=True)
    }
    assert len(held) == 256, "every claim got its own task"
    for _round in range(3):
        beats = [
            (f"/tasks/{tid}/heartbeat", {"runner_id": r, "lease": le, "status": "running"})
            for tid, (r, le) in held.items()
        ]
        results = asyncio.run(_burst(orch.url, orch.runner_token, beats))
        assert {s for s, _, _ in results} == {200}, (
            sorted({s for s, _, _ in results}),
            orch.log_tail(),
        )
        assert max(t for _, t, _ in results) < 30
    assert orch.client().get("/up").status_code == 200

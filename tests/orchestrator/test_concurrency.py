"""64 concurrent claimers over HTTP on 1,000 tasks: every task claimed exactly once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.orchestrator_proc import OrchestratorProcess

# Its own OS process: 64 claimers against a server that is not sharing their GIL.


def _drain(url: str, token: str, runner_id: str) -> list[int]:
    got: list[int] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        while True:
            resp = c.post(
                "/tasks/claim",
                json={"provider": "aws", "instance_type": "c7g.large", "runner_id": runner_id},
            )
            assert resp.status_code == 200, resp.text
            body = resp.json()
            if body["status"] == "done":
                return got
            got.append(body["task"]["id"])


def test_64_claimers_1000_tasks(orchestrator_process: OrchestratorProcess) -> None:
    orchestrator = orchestrator_process
    admin = orchestrator.client()
    spec = {
        "ruby_version": "3.4.7",
        "per_instance_type": {"tasks": 1000},
        "aws": ["c7g.large"],
        # Claimed tasks are never finished here: with retries on, claimers would "wait".
        "max_attempts": 1,
    }
    created = admin.post("/runs", json=spec)
    assert created.status_code == 201
    all_ids = {t["id"] for t in created.json()["tasks"]}
    with ThreadPoolExecutor(64) as pool:
        results = list(
            pool.map(
                lambda i: _drain(orchestrator.url, orchestrator.runner_token, f"r{i}"), range(64)
            )
        )
    claimed = Counter(tid for ids in results for tid in ids)
    assert set(claimed) == all_ids
    assert max(claimed.values()) == 1
    # Several claimers got work: the claim does not serialise behind one runner.
    assert sum(1 for ids in results if ids) > 8
    tasks = admin.get(f"/runs/{created.json()['run_id']}/tasks").json()["tasks"]
    by_runner = {t["id"]: t["runner_id"] for t in tasks}
    for i, ids in enumerate(results):
        assert all(by_runner[tid] == f"r{i}" for tid in ids)
    assert {t["lease"] for t in tasks} == {1}

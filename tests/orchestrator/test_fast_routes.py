"""api/fast.py: the common claim and heartbeat skip FastAPI on Postgres, and answer exactly
what the FastAPI routes answer; everything else still reaches the routes, body intact.

Two real orchestrators share one Postgres database: one as users run it (direct path on),
one with CLOUDBENCH_DIRECT_HOT_PATH=false (every request through FastAPI), and each
request is compared between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.orchestrator.helpers import create_run
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess

SPEC = {"ruby_version": "3.4.7", "per_instance_type": {"tasks": 4}, "local": ["box"]}
CLAIM = {"provider": "local", "instance_type": "box"}
# What differs between two tasks of one run by nature, not by the path that answered.
PER_TASK = {"id", "run_number", "claimed_at", "heartbeat_at", "started_at", "runner_id"}


@pytest.fixture
def pair(
    pg_url: str, orchestrator_factory: OrchestratorFactory
) -> tuple[OrchestratorProcess, OrchestratorProcess]:
    fast = orchestrator_factory(pg_url, server="in_process")
    routed = orchestrator_factory(
        pg_url,
        server="in_process",  # _served reads the app's counters
        extra_env={"CLOUDBENCH_DIRECT_HOT_PATH": "false"},
        admin_token=fast.admin_token,  # one set of tokens: the same request means the same
        runner_token=fast.runner_token,
    )
    return fast, routed


def _served(orch: OrchestratorProcess) -> dict[str, int]:
    app: Any = orch.server.config.app  # type: ignore[attr-defined]
    return dict(app.state.hot_routes.served)


def _same_shape(a: Any, b: Any, path: str = "") -> None:
    """Equal but for the per-task values (ids, times, signed URLs naming the task)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (path, a, b)
        for key in a:
            if key in PER_TASK or key.endswith(("_url", "_key")):
                assert (a[key] is None) == (b[key] is None), (path, key)
            else:
                _same_shape(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (path, a, b)
        for x, y in zip(a, b, strict=True):
            _same_shape(x, y, path)
    else:
        assert a == b, (path, a, b)


@pytest.fixture
def clients(
    pair: tuple[OrchestratorProcess, OrchestratorProcess],
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    fast, routed = pair
    create_run(fast.client(), SPEC)
    with fast.client(role="runner") as a, routed.client(role="runner") as b:
        yield a, b


def test_common_claim_and_heartbeat_skip_fastapi_and_answer_the_same(
    pair: tuple[OrchestratorProcess, OrchestratorProcess],
    clients: tuple[httpx.Client, httpx.Client],
) -> None:
    fast, routed = pair
    got = [
        c.post("/tasks/claim", json=CLAIM | {"runner_id": f"r{i}"}) for i, c in enumerate(clients)
    ]
    assert [r.status_code for r in got] == [200, 200], [r.text for r in got]
    assert got[0].headers["content-type"] == got[1].headers["content-type"]
    claimed = [r.json() for r in got]
    assert claimed[0]["status"] == "assigned"
    assert claimed[0]["task"]["id"] != claimed[1]["task"]["id"]
    _same_shape(claimed[0], claimed[1])
    beat = {"status": "running", "current_benchmark": "lobsters\x1fx", "progress_pct": 12.5}
    beats = []
    for i, (client, body) in enumerate(zip(clients, claimed, strict=True)):
        task = body["task"]
        fenced = {"runner_id": f"r{i}", "lease": task["lease"]}
        beats.append(client.post(f"/tasks/{task['id']}/heartbeat", json=beat | fenced))
    assert [r.status_code for r in beats] == [200, 200], [r.text for r in beats]
    hb = [r.json() for r in beats]
    assert hb[0]["status"] == "running" and hb[0]["current_benchmark"] == "lobsters x"
    assert hb[0]["started_at"] is not None and len(hb[0]["attempts"]) == 1
    _same_shape(hb[0], hb[1])
    assert _served(fast) == {"claim": 1, "heartbeat": 1}
    assert _served(routed) == {}
    # What the direct path wrote is what the API reads back (the admin view of the task).
    listed = fast.client().get(f"/runs/{claimed[0]['task']['run_id']}/tasks")
    assert listed.status_code == 200, listed.text
    (stored,) = [t for t in listed.json()["tasks"] if t["id"] == hb[0]["id"]]
    assert (stored["progress_pct"], stored["status"], stored["lease"]) == (12.5, "running", 1)


def _chunked(body: bytes) -> Iterator[bytes]:
    yield body[:5]
    yield body[5:]


def test_everything_else_reaches_the_routes_with_its_body(
    pair: tuple[OrchestratorProcess, OrchestratorProcess],
    clients: tuple[httpx.Client, httpx.Client],
) -> None:
    fast = pair[0]
    a = clients[0]
    held = a.post("/tasks/claim", json=CLAIM | {"runner_id": "holder"}).json()["task"]
    hb = f"/tasks/{held['id']}/heartbeat"
    ok_beat = {"runner_id": "holder", "lease": held["lease"], "status": "running"}
    admin = {"Authorization": f"Bearer {fast.admin_token}"}
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/tasks/claim", {"json": CLAIM}),  # runner_id missing: 422
        ("/tasks/claim", {"json": CLAIM | {"runner_id": "x", "provider": "gcp"}}),
        ("/tasks/claim", {"json": CLAIM | {"runner_id": "nul\x00"}}),
        (
            "/tasks/claim",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
        ),
        ("/tasks/claim", {"data": {"runner_id": "form"}}),  # not JSON at all
        ("/tasks/claim", {"json": CLAIM | {"runner_id": "admin"}, "headers": admin}),
        (
            "/tasks/claim",
            {"json": CLAIM | {"runner_id": "x"}, "headers": {"Authorization": "Bearer no"}},
        ),
        ("/runs/999999/tasks/claim", {"json": CLAIM | {"runner_id": "x"}}),  # no such run
        (
            "/tasks/claim",
            {"json": {"provider": "local", "instance_type": "nothing", "runner_id": "x"}},
        ),
        (hb, {"json": ok_beat | {"lease": held["lease"] + 1}}),  # stale lease: 409
        (hb, {"json": ok_beat | {"runner_id": "thief"}}),  # not the holder: 403
        ("/tasks/99999999/heartbeat", {"json": ok_beat}),  # 404
        ("/tasks/0/heartbeat", {"json": ok_beat}),  # path id out of range: 422
        (hb, {"json": ok_beat | {"progress_pct": 101}}),
        (
            "/tasks/claim",
            {"content": b"x" * (2 << 20), "headers": {"content-type": "application/json"}},
        ),
    ]
    for path, kwargs in requests:
        answers = [c.post(path, **kwargs) for c in clients]
        assert answers[0].status_code == answers[1].status_code, (path, kwargs, answers)
        assert answers[0].status_code >= 400 or answers[0].json()["status"] != "assigned"
        assert answers[0].content == answers[1].content, (path, answers[0].text)
    assert _served(fast) == {"claim": 1}, "only the first claim was the common case"
    # A body in several chunks (no content-length) is read whole by the direct path.
    beat = a.post(
        hb,
        content=_chunked(httpx.Request("POST", "/", json=ok_beat).content),
        headers={"content-type": "application/json"},
    )
    assert beat.status_code == 200 and beat.json()["status"] == "running", beat.text
    assert _served(fast) == {"claim": 1, "heartbeat": 1}
    # And one the direct path hands on (a stale lease) still reaches the route whole.
    stale = _chunked(httpx.Request("POST", "/", json=ok_beat | {"lease": 0}).content)
    refused = a.post(hb, content=stale, headers={"content-type": "application/json"})
    assert refused.status_code == 409, refused.text

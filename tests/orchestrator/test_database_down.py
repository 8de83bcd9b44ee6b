"""The database going away is a 503 with the error envelope (runners retry), not a 500."""

from __future__ import annotations

import psycopg
from sqlalchemy.engine import make_url

from tests.orchestrator.helpers import create_run
from tests.orchestrator_inproc import OrchestratorFactory


def _admin(pg_server: str, sql: str, *params: object) -> None:
    dsn = make_url(pg_server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql, params)


def test_refused_database_is_503_then_service_resumes_with_data_intact(
    pg_server: str, pg_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(pg_url, server="in_process")
    admin = orch.client()
    run_id = create_run(admin)["run_id"]
    name = make_url(pg_url).database
    assert name is not None
    # Real outage: Postgres refuses new connections to this database and ends open ones.
    _admin(pg_server, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    _admin(
        pg_server, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", name
    )
    try:
        for method, path, body in [
            ("GET", f"/runs/{run_id}", None),
            (
                "POST",
                "/tasks/claim",
                {"provider": "local", "instance_type": "laptop", "runner_id": "r1"},
            ),
        ]:
            client = orch.client(role="runner") if path.startswith("/tasks") else admin
            resp = client.request(method, path, json=body)
            assert resp.status_code == 503, (path, resp.status_code, resp.text)
            assert resp.json()["error"] == "database unavailable, retry later"
            assert resp.headers["Retry-After"] == "2"
            assert name not in resp.text and "password" not in resp.text.lower()
    finally:
        _admin(pg_server, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    # Back: the run stored before the outage is still there and claims work again.
    assert admin.get(f"/runs/{run_id}").status_code == 200
    claimed = orch.client(role="runner").post(
        "/tasks/claim", json={"provider": "local", "instance_type": "laptop", "runner_id": "r1"}
    )
    assert claimed.status_code == 200 and claimed.json()["status"] == "assigned", claimed.text

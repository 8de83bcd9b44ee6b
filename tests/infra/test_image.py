"""The production image (deploy/Dockerfile), built and run for real against Postgres.

Built with podman (rootful, see scripts/setup-container-engine.sh) from the unchanged
Dockerfile; where no registry is reachable `python:3.11-slim` is a local stand-in made by
scripts/standin-python-image.sh. The container runs with host networking so it reaches the
test's Postgres on 127.0.0.1; CLOUDBENCH_PORT moves its listener to a free port.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _create_database
from tests.containers import build_once_more_on_cache_race
from tests.orchestrator.helpers import CONFIG
from tests.pg import free_port

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "scripts" / "standin-python-image.sh"
BASE = "docker.io/library/python:3.11-slim"
APP_UID = 10001  # deploy/Dockerfile's cloudbench user


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def image(container_engine: str) -> Iterator[str]:
    """deploy/Dockerfile built under a unique tag; removed afterwards (the base and the
    layer cache stay, so the next build is quick)."""
    if shutil.which("podman") is None:
        pytest.skip("IMAGE TESTS SKIPPED: they drive podman and this engine is not podman")
    if podman("image", "exists", BASE, check=False).returncode != 0:
        if os.geteuid() != 0:
            pytest.skip(f"IMAGE TESTS SKIPPED: no {BASE} and not root to make a stand-in")
        done = subprocess.run(
            ["bash", str(STANDIN)], capture_output=True, text=True, timeout=900, check=False
        )
        assert done.returncode == 0, f"standin-python-image.sh failed:\n{done.stderr[-3000:]}"
    tag = f"localhost/cloudbench-orchestrator:test-{uuid.uuid4().hex[:8]}"
    # Docker format: podman's default (OCI) drops HEALTHCHECK. deploy/Dockerfile.dockerignore
    # keeps the context to what the build copies (podman honours it, as BuildKit does).
    dockerfile = str(ROOT / "deploy" / "Dockerfile")
    argv = ["podman", "build", "--format", "docker", "-f", dockerfile, "-t", tag, str(ROOT)]
    done = build_once_more_on_cache_race(argv, timeout=900)
    assert done.returncode == 0, f"podman build failed:\n{done.stderr[-3000:]}"
    try:
        yield tag
    finally:
        podman("rmi", "--force", tag, check=False)


@dataclass
class Running:
    name: str
    url: str
    database_url: str
    admin_token: str


def _env(database_url: str, port: int, **tokens: str) -> list[str]:
    env = {
        "CLOUDBENCH_DATABASE_URL": database_url,
        "CLOUDBENCH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CLOUDBENCH_PORT": str(port),
        **tokens,
    }
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


@pytest.fixture(scope="module")
def running(image: str, pg_server: str) -> Iterator[Running]:
    """One container of the image, serving on a free port, healthy."""
    database_url = _create_database(pg_server)
    port = free_port()
    admin = secrets.token_urlsafe(24)
    name = f"cloudbench-image-test-{uuid.uuid4().hex[:8]}"
    env = _env(
        database_url,
        port,
        CLOUDBENCH_ADMIN_TOKEN=admin,
        CLOUDBENCH_RUNNER_TOKEN=secrets.token_urlsafe(24),
    )
    podman("run", "-d", "--name", name, "--network", "host", *env, image)
    try:
        _wait_healthy(name)
        yield Running(name, f"http://127.0.0.1:{port}", database_url, admin)
    finally:
        podman("rm", "--force", "--time", "5", name, check=False)


def _wait_healthy(name: str, timeout: float = 90) -> None:
    # podman without systemd never schedules healthchecks itself; `healthcheck run` runs
    # the image's own HEALTHCHECK command and records its result in the container state.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state != "running":
            logs = podman("logs", name, check=False)
            raise AssertionError(f"container {state}:\n{logs.stdout}{logs.stderr}")
        if podman("healthcheck", "run", name, check=False).returncode == 0:
            return
        time.sleep(0.5)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"container never became healthy:\n{logs.stdout}{logs.stderr}")


def test_image_keeps_healthcheck(image: str) -> None:
    check = podman("image", "inspect", "--format", "{{json .HealthCheck}}", image).stdout
    assert "/up" in check and "CLOUDBENCH_PORT" in check


def test_container_is_healthy(running: Running) -> None:
    health = podman("inspect", "--format", "{{.State.Health.Status}}", running.name)
    assert health.stdout.strip() == "healthy"
    assert httpx.get(f"{running.url}/up", timeout=5).status_code == 200


def test_runs_as_non_root(running: Running) -> None:
    # PID 1 is the server itself (the entrypoint's sh execs it).
    status = podman("exec", running.name, "cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, flags=re.MULTILINE)
    assert uids is not None and uids.groups() == (str(APP_UID), str(APP_UID))
    cmdline = podman("exec", running.name, "cat", "/proc/1/cmdline").stdout
    assert "serve" in cmdline.split("\0")


def _tables(database_url: str) -> set[str]:
    dsn = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False)) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        if any(row[0] == "alembic_version" for row in rows):
            assert len(conn.execute("SELECT version_num FROM alembic_version").fetchall()) == 1
    return {row[0] for row in rows}


def test_migrations_were_applied(running: Running) -> None:
    assert {"alembic_version", "runs", "tasks"} <= _tables(running.database_url)


def test_create_run_with_admin_token(running: Running) -> None:
    headers = {"Authorization": f"Bearer {running.admin_token}"}
    resp = httpx.post(f"{running.url}/runs", json=CONFIG, headers=headers, timeout=30)
    assert resp.status_code == 201, resp.text
    assert resp.json()["tasks_created"] > 0
    denied = httpx.post(f"{running.url}/runs", json=CONFIG, timeout=30)
    assert denied.status_code in (401, 403)


def test_dist_serves_the_wheel(running: Running) -> None:
    index = httpx.get(f"{running.url}/dist/", timeout=30)
    assert index.status_code == 200, index.text
    wheels = re.findall(r'href="(cloudbench-[^"]+-py3-none-any\.whl)"', index.text)
    assert len(wheels) == 1, index.text
    wheel = httpx.get(f"{running.url}/dist/{wheels[0]}", timeout=30)
    assert wheel.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(wheel.content)).namelist()
    assert "cloudbench/orchestrator/app.py" in names
    assert any(n.endswith(".dist-info/METADATA") for n in names)


def test_refuses_to_start_without_admin_token(image: str, pg_server: str) -> None:
    database_url = _create_database(pg_server)
    env = _env(database_url, free_port(), CLOUDBENCH_RUNNER_TOKEN=secrets.token_urlsafe(24))
    done = podman("run", "--rm", "--network", "host", *env, image, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "CLOUDBENCH_ADMIN_TOKEN must be set" in output
    assert "Traceback" not in output
    assert _tables(database_url) == set(), "it migrated before refusing"

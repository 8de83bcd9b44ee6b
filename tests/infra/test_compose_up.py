"""deploy/compose.yaml brought up for real: podman-compose (from PyPI) over rootful podman.

What stands in for what cannot exist here, and why:
- No registry is reachable, so `postgres:15` and `python:3.11-slim` are local stand-ins
  imported under the official tags (scripts/standin-postgres-image.sh,
  scripts/standin-python-image.sh; cached by a hash of their recipe). deploy/ is used
  unchanged; the orchestrator image is built from it by `podman-compose build`.
- Debian 12's podman (4.3) runs healthchecks only through systemd timers, and there is no
  systemd here; podman-compose then starts the orchestrator without waiting for
  `condition: service_healthy` (it says so). The test runs each service's own compose
  healthcheck with `podman healthcheck run` (what the timer would do), and the
  orchestrator's `restart: unless-stopped` covers a start before Postgres is ready.
- The `tls` profile (Caddy) is not brought up: there is no caddy image and no domain.

One project, under a unique name, goes through: build, up, a runner on this machine (host
executor, tests/fake_ruby_bench) completing a small run through the published port,
`down` (data volumes kept), `up` again (the run and its results still there), `down -v`
(nothing left: containers, pods, networks, volumes).
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.containers import build_once_more_on_cache_race
from tests.pg import free_port
from tests.runner.conftest import FAKE_SUITE
from tests.runner.test_runner_integration import _create_run

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
STANDINS = ("standin-python-image.sh", "standin-postgres-image.sh")
PODMAN_COMPOSE = Path(sys.executable).parent / "podman-compose"
# The last build stays under this tag so the next build reuses its layers (removing a
# build's only tag also deletes its intermediate layers, the build cache).
CACHE_TAG = "localhost/cloudbench-orchestrator:compose-test-cache"


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv[:4])} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


def podman(*args: str, timeout: float = 120) -> str:
    return _run(["podman", *args], timeout=timeout)


@dataclass
class Project:
    name: str
    url: str
    env: dict[str, str]  # secrets reach podman-compose by environment only, never argv
    admin_token: str
    runner_token: str

    def compose(self, *args: str, timeout: float = 300) -> str:
        argv = [str(PODMAN_COMPOSE), "-p", self.name, "-f", str(COMPOSE_FILE), *args]
        return _run(argv, env=self.env, timeout=timeout)

    def container(self, service: str) -> str:
        names = podman(
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            f"label=com.docker.compose.project={self.name}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ).split()
        assert len(names) == 1, f"{service}: containers {names}"
        return names[0]

    def leftovers(self) -> dict[str, list[str]]:
        """Everything podman holds whose name carries this (unique) project name."""
        found = {
            "containers": podman("ps", "-a", "--format", "{{.Names}}"),
            "pods": podman("pod", "ls", "--format", "{{.Name}}"),
            "networks": podman("network", "ls", "--format", "{{.Name}}"),
            "volumes": podman("volume", "ls", "--format", "{{.Name}}"),
        }
        return {kind: [n for n in out.split() if self.name in n] for kind, out in found.items()}

    def client(self) -> httpx.Client:  # as OrchestratorProcess.client (admin)
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def standin_images(container_engine: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("COMPOSE TEST SKIPPED: stand-in images need root (rootful podman)")
    for script in STANDINS:
        _run(["bash", str(ROOT / "scripts" / script)], timeout=900)


@pytest.fixture(scope="module")
def project(standin_images: None) -> Iterator[Project]:
    name = f"cbtest{uuid.uuid4().hex[:10]}"
    port = free_port()
    admin, runner = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = {
        **os.environ,
        # Characters a URL would misread: the password must reach Postgres as it is.
        "POSTGRES_PASSWORD": secrets.token_urlsafe(18) + "@%41/:#?",
        "CLOUDBENCH_ADMIN_TOKEN": admin,
        "CLOUDBENCH_RUNNER_TOKEN": runner,
        "CLOUDBENCH_IMAGE": f"localhost/cloudbench-orchestrator:{name}",
        "CLOUDBENCH_HTTP_BIND": "127.0.0.1",
        "CLOUDBENCH_HTTP_PORT": str(port),
        # CLOUDBENCH_PUBLIC_URL left to its default, which must follow the published port.
    }
    env.pop("CLOUDBENCH_PUBLIC_URL", None)
    proj = Project(name, f"http://127.0.0.1:{port}", env, admin, runner)
    try:
        # Cache hits on CACHE_TAG's layers (the dependency layer is keyed by pyproject.toml,
        # uv.lock and README.md), so this is quick unless those changed.
        build = [str(PODMAN_COMPOSE), "-p", name, "-f", str(COMPOSE_FILE), "build"]
        done = build_once_more_on_cache_race(build, timeout=900, env=env)
        assert done.returncode == 0, f"podman-compose build failed:\n{done.stderr[-3000:]}"
        yield proj
    finally:
        subprocess.run(
            [str(PODMAN_COMPOSE), "-p", name, "-f", str(COMPOSE_FILE), "down", "-v"],
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )
        _keep_as_cache(env["CLOUDBENCH_IMAGE"])


def _image_id(ref: str) -> str | None:
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _keep_as_cache(image: str) -> None:
    """Moves CACHE_TAG to this build and drops the previous cached build (unless in use)."""
    old, new = _image_id(CACHE_TAG), _image_id(image)
    if new is None:
        return
    podman("tag", image, CACHE_TAG)
    podman("untag", new, image)  # only this name: with none, untag removes them all
    if old is not None and old != new:
        subprocess.run(["podman", "rmi", old], capture_output=True, timeout=120, check=False)


def _healthy(proj: Project, service: str, timeout: float = 120) -> None:
    """Runs the service's compose healthcheck until it passes (see the module docstring)."""
    name = proj.container(service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check = subprocess.run(
            ["podman", "healthcheck", "run", name], capture_output=True, timeout=60, check=False
        )
        if check.returncode == 0:
            status = podman("inspect", "--format", "{{.State.Health.Status}}", name).strip()
            assert status == "healthy", status
            return
        time.sleep(1)
    logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, check=False)
    raise AssertionError(f"{service} never healthy:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")


def _up(proj: Project) -> None:
    proj.compose("up", "-d")
    _healthy(proj, "postgres")
    _healthy(proj, "orchestrator")
    assert httpx.get(f"{proj.url}/up", timeout=10).status_code == 200


def _psql(proj: Project, sql: str) -> str:
    # The socket inside the container: Postgres is not published to the host.
    argv = ["exec", proj.container("postgres"), "psql", "-U", "cloudbench", "-d", "cloudbench"]
    return podman(*argv, "-tAc", sql).strip()


def _runner(proj: Project, run_id: int, work: Path) -> None:
    env = {
        **os.environ,
        "CLOUDBENCH_RUNNER_TOKEN": proj.runner_token,
        "CLOUDBENCH_HEARTBEAT_INTERVAL": "1",
    }
    argv = [
        sys.executable,
        "-m",
        "cloudbench.runner",
        "--orchestrator-url",
        proj.url,
        "--provider",
        "local",
        "--instance-type",
        "itest",
        "--run-id",
        str(run_id),
        "--slots",
        "1",
        "--executor",
        "host",
        "--ruby-bench",
        str(FAKE_SUITE),
        "--work-dir",
        str(work),
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _finished_run(proj: Project, run_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with proj.client() as http:
        while True:
            run: dict[str, Any] = http.get(f"/runs/{run_id}").json()
            if run["status"] == "completed" and run.get("gzip_url"):
                return run
            assert time.monotonic() < deadline, run
            time.sleep(0.5)


def _archive(url: str) -> dict[str, bytes]:
    """The run's results.tar.gz, downloaded through the published port: files by name."""
    got = httpx.get(url, timeout=30)
    assert got.status_code == 200, got.text
    files = {}
    with tarfile.open(fileobj=io.BytesIO(got.content), mode="r:gz") as tar:
        for info in tar:
            if (data := tar.extractfile(info)) is not None:
                files[info.name] = data.read()
    return files


def test_compose_up_run_down(ruby: str, project: Project, tmp_path: Path) -> None:
    _up(project)
    # The orchestrator migrated the compose Postgres (the one alembic head, its tables).
    assert len(_psql(project, "SELECT version_num FROM alembic_version").split()) == 1
    assert _psql(project, "SELECT to_regclass('public.tasks') IS NOT NULL") == "t"

    run_id = _create_run(project, tasks=2, names=["fib", "loops"])  # type: ignore[arg-type]
    _runner(project, run_id, tmp_path / "work")
    run = _finished_run(project, run_id)
    assert run["tasks"]["completed"] == 2, run
    results = _archive(run["gzip_url"])
    for task in ("itest-1", "itest-2"):  # each task's ruby-bench output, both benchmarks
        output = results.get(f"{task}/output.json", b"")
        assert b'"fib"' in output and b'"loops"' in output, sorted(results)

    # `down` keeps the data volumes: containers, pods and networks go, the data stays.
    project.compose("down")
    left = project.leftovers()
    assert left["containers"] == left["pods"] == left["networks"] == [], left
    assert len(left["volumes"]) == 2, left  # postgres-data, orchestrator-state

    _up(project)
    with project.client() as http:
        again = http.get(f"/runs/{run_id}").json()
    assert again["status"] == "completed" and again["tasks"]["completed"] == 2, again
    assert _archive(again["gzip_url"]) == results

    project.compose("down", "-v")
    assert project.leftovers() == {"containers": [], "pods": [], "networks": [], "volumes": []}

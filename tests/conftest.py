"""Shared fixtures: a real PostgreSQL cluster, fresh databases, orchestrator servers.

Worker-safe under pytest-xdist: each worker is its own pytest session, so it starts its
own cluster, templates and servers on ports it picks; container tests that share state
on the engine run on one worker (SHARED below), the rest spread.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from cloudbench.orchestrator.db import migrate
from tests.containers import ensure_engine
from tests.orchestrator_inproc import InProcessOrchestrator, OrchestratorFactory, Server
from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import Cluster

TEMPLATE_DB = "cloudbench_template"


# Tests sharing state on the one podman service, as sets that each run on one worker
# (--dist loadgroup). Everything else, container tests included, spreads over workers.
SHARED = {
    # Both build deploy/Dockerfile: one after the other, the second build is cache hits.
    "tests/infra/test_image.py": "image",
    "tests/infra/test_compose_up.py": "image",
    # One module-scoped executor; its tests list containers by one label (run_id 424242).
    "tests/runner/test_docker_executor.py": "podman",
    # Starts a second rootful podman service on the shared storage (tests/engines.py);
    # a docker-executor test's log stream hung while it ran beside them.
    "tests/runner/test_engine_affinity.py": "podman",
    # Builds and removes benchmark images on the shared storage: beside another worker's
    # builds and removals podman lost a layer mid-build ("layer not known"); and its
    # module-scoped base image, split over two workers, was removed under the other's tests.
    "tests/runner/test_image_selection.py": "podman",
    # The AWS twin end to end: minutes of VMs, Terraform and moto; a worker of its own.
    "tests/twin/test_e2e.py": "twin",
}
# xdist hands work out in collection order and a worker's last test ends the run: the
# longest (from --durations) go first, so none of them starts near the end.
LONGEST_FIRST = [
    "tests/twin/test_e2e.py",
    "tests/test_soak.py",
    "tests/master/test_cloud_vms.py",
    "tests/master/test_aws_path.py",
    "tests/twin/test_twin.py",
    "tests/infra/test_meta_nat_group.py",
    "tests/master/test_wheelhouse.py",
    "tests/runner/test_image_selection.py",
    "tests/twin/test_azure_boot.py",
    "tests/infra/test_image.py",
    "tests/infra/test_compose_up.py",
    "tests/master/test_resume.py",
    "tests/orchestrator/test_fuzz.py",
    "tests/orchestrator/test_hot_paths.py",
    "tests/orchestrator/test_restart_sweep.py",
    "tests/master/test_local_run.py",
    "tests/orchestrator/test_concurrency.py",
    "tests/master/test_status_nuke.py",
    "tests/runner/test_engine_affinity.py",
    "tests/runner/test_docker_executor.py",
    "tests/master/test_local_run_container.py",
    "tests/orchestrator/test_races.py",
    "tests/report/test_local_run.py",
    "tests/master/test_signals.py",
    "tests/master/test_cost_guard.py",
    # 20-30 s tests that otherwise came last (a run's tail on 5 workers).
    "tests/master/test_azure_path.py",
    "tests/runner/test_matrix_runner.py",
    "tests/infra/test_checkov.py",
    "tests/runner/test_preemption.py",
    "tests/orchestrator/storage/test_s3.py",
    "tests/report/test_browser.py",
    "tests/dashboard/test_browser.py",
    "tests/master/test_fail_fast.py",
    "tests/runner/test_runner_integration.py",
    "tests/master/test_local_matrix.py",
]


# tryfirst: xdist's own hook turns xdist_group marks into node ids; it must see ours.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
    for item in items:
        group = SHARED.get(item.nodeid.split("::")[0])
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def _moto_as_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with moto's own Service Quotas: an in-process twin
    (tests/twin/core.py) patches moto for good, and a later test in that worker saw the
    twin's quota values instead of moto's "no such quota"."""
    from moto.servicequotas.models import ServiceQuotasBackend

    from tests.moto_aws import MOTO_GET_SERVICE_QUOTA

    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", MOTO_GET_SERVICE_QUOTA)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Admin URL of a PostgreSQL server: CLOUDBENCH_TEST_DATABASE_URL or a throwaway one."""
    configured = os.environ.get("CLOUDBENCH_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    cluster = Cluster()
    url = cluster.start()
    try:
        yield url
    finally:
        cluster.stop()


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _create_database(admin_url: str, template: str | None = None) -> str:
    url = make_url(admin_url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(_dsn(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> str:
    """A database alembic migrated to head once; servers' databases are copies of it."""
    url = make_url(pg_server)
    with psycopg.connect(_dsn(pg_server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    migrate.upgrade(url.set(database=TEMPLATE_DB).render_as_string(hide_password=False))
    return TEMPLATE_DB


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file alembic migrated to head once, copied for each server."""
    path = tmp_path_factory.mktemp("sqlite-template") / "orchestrator.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # fold the WAL in: the copy is one file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    return path


def _is_empty_postgres(url: str) -> bool:
    with psycopg.connect(_dsn(url)) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    return row is not None and row[0] == 0


def _at_head(database_url: str, request: pytest.FixtureRequest) -> None:
    """Give a server's still-empty database the migrated schema by copying the template
    (what `serve`'s alembic run would produce, without running alembic per test). A
    database the test already populated is left alone; `serve` migrates it as usual."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        target = Path(url.database)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return
    if not _is_empty_postgres(database_url):
        return
    template = request.getfixturevalue("pg_template")
    admin_url = url.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(_dsn(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{url.database}"')
        conn.execute(f'CREATE DATABASE "{url.database}" TEMPLATE "{template}"')


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh, empty Postgres database for one test."""
    return _create_database(pg_server)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}"


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs against both backends."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture
def orchestrator_factory(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OrchestratorFactory]:
    """Starts orchestrators, each as the call site says: server="in_process" (the app
    behind uvicorn in this process) or server="process" (`serve`, its own OS process:
    for tests that kill, restart or race it, read its log, or run several workers)."""
    started: list[OrchestratorProcess] = []

    def start(database_url: str, *, server: Server, **options: Any) -> OrchestratorProcess:
        if server == "in_process" and options.get("workers") not in (None, 1):
            raise ValueError("several workers are processes: ask for server='process'")
        kind = OrchestratorProcess if server == "process" else InProcessOrchestrator
        _at_head(database_url, request)
        state_dir = tmp_path / f"state{len(started)}"
        proc = kind(database_url=database_url, state_dir=state_dir, **options)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def orchestrator(db_url: str, orchestrator_factory: OrchestratorFactory) -> OrchestratorProcess:
    """A real orchestrator over HTTP, in this process, on Postgres and SQLite."""
    return orchestrator_factory(db_url, server="in_process")


@pytest.fixture
def orchestrator_process(
    db_url: str, orchestrator_factory: OrchestratorFactory
) -> OrchestratorProcess:
    """`orchestrator`, but `serve` as its own OS process."""
    return orchestrator_factory(db_url, server="process")


@pytest.fixture
def orchestrator_server(
    pg_url: str, orchestrator_factory: OrchestratorFactory
) -> OrchestratorProcess:
    """A real orchestrator over HTTP, in this process, on Postgres with local storage."""
    return orchestrator_factory(pg_url, server="in_process")


@pytest.fixture
def orchestrator_server_process(
    pg_url: str, orchestrator_factory: OrchestratorFactory
) -> OrchestratorProcess:
    """`orchestrator_server`, but `serve` as its own OS process."""
    return orchestrator_factory(pg_url, server="process")


@pytest.fixture(scope="session")
def ruby() -> str:
    """The host's Ruby (fake ruby-bench suite, host executor). Missing fails, never skips."""
    found = shutil.which("ruby")
    assert found, "no `ruby` on PATH: install Debian's ruby (scripts/test does)"
    return found


@pytest.fixture(scope="session")
def container_engine() -> str:
    """DOCKER_HOST of a working engine; sets podman up on root/Debian (as CI is)."""
    return ensure_engine()

"""Shared fixtures: a real PostgreSQL cluster, fresh databases, orchestrator servers.

Worker-safe under pytest-xdist: each worker is its own pytest session, so it starts its
own cluster, templates and servers on ports it picks; tests needing the container
engine share one worker (xdist_group), so image builds never race.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from cloudbench.orchestrator.db import migrate
from tests.containers import ensure_engine
from tests.orchestrator_inproc import InProcessOrchestrator
from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import Cluster

TEMPLATE_DB = "cloudbench_template"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "container_engine" in names:
            # One worker builds and runs images; --dist loadgroup honours this.
            item.add_marker(pytest.mark.xdist_group("containers"))
        elif "harness" in names:
            # End-to-end `cloudbench run`s (master, orchestrator, runners: many processes
            # with fixed time limits) one at a time, beside the light tests.
            item.add_marker(pytest.mark.xdist_group("e2e"))


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


def _wants_process(request: pytest.FixtureRequest, kwargs: dict[str, object]) -> bool:
    if os.environ.get("CLOUDBENCH_TEST_SERVER") == "process":  # everything as before
        return True
    several = kwargs.get("workers") not in (None, 1)
    return several or request.node.get_closest_marker("server_process") is not None


@pytest.fixture
def orchestrator_factory(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., OrchestratorProcess]]:
    """Starts orchestrators: in this process by default, as `serve` processes for tests
    marked server_process (or asking for several workers)."""
    started: list[OrchestratorProcess] = []

    def start(database_url: str, **kwargs: object) -> OrchestratorProcess:
        kind = OrchestratorProcess if _wants_process(request, kwargs) else InProcessOrchestrator
        _at_head(database_url, request)
        proc = kind(
            database_url=database_url, state_dir=tmp_path / f"state{len(started)}", **kwargs
        )  # type: ignore[arg-type]
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def orchestrator(
    db_url: str, orchestrator_factory: Callable[..., OrchestratorProcess]
) -> OrchestratorProcess:
    """A real orchestrator over HTTP (see orchestrator_factory), on Postgres and SQLite."""
    return orchestrator_factory(db_url)


@pytest.fixture
def orchestrator_server(
    pg_url: str, orchestrator_factory: Callable[..., OrchestratorProcess]
) -> OrchestratorProcess:
    """A real orchestrator over HTTP on Postgres with local storage."""
    return orchestrator_factory(pg_url)


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

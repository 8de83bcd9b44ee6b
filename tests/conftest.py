"""Shared fixtures: a real PostgreSQL cluster, fresh databases, orchestrator processes."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.containers import ensure_engine
from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import Cluster


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


def _create_database(admin_url: str) -> str:
    url = make_url(admin_url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


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
def orchestrator_factory(tmp_path: Path) -> Iterator[Callable[..., OrchestratorProcess]]:
    started: list[OrchestratorProcess] = []

    def start(database_url: str, **kwargs: object) -> OrchestratorProcess:
        proc = OrchestratorProcess(
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
    """A real orchestrator process over HTTP, on Postgres and on SQLite."""
    return orchestrator_factory(db_url)


@pytest.fixture
def orchestrator_server(
    pg_url: str, orchestrator_factory: Callable[..., OrchestratorProcess]
) -> OrchestratorProcess:
    """A real orchestrator process on Postgres with local storage."""
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

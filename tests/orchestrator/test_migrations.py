"""Migrations upgrade a blank database and downgrade cleanly, on both backends."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from cloudbench.orchestrator.db import migrate
from cloudbench.orchestrator.db.models import Base


def test_upgrade_downgrade_roundtrip(db_url: str) -> None:
    engine = create_engine(db_url)
    assert inspect(engine).get_table_names() == []
    migrate.upgrade(db_url)
    tables = set(inspect(engine).get_table_names())
    assert {"runs", "tasks", "alembic_version"} <= tables
    index_names = {i["name"] for i in inspect(engine).get_indexes("tasks")}
    assert {"ix_tasks_pending", "ix_tasks_active_heartbeat"} <= index_names
    # The migration produces exactly the columns the models declare.
    for table in Base.metadata.sorted_tables:
        cols = {c["name"] for c in inspect(engine).get_columns(table.name)}
        assert cols == set(table.columns.keys()), table.name
    migrate.downgrade(db_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(db_url)  # and back up again
    assert "tasks" in inspect(engine).get_table_names()
    engine.dispose()


def test_free_text_error_types_become_runner_error_and_keep_their_text(db_url: str) -> None:
    """Rows written before error_type was an ErrorType stay readable through the ORM."""
    from sqlalchemy import select, text
    from sqlalchemy.orm import Session

    from cloudbench.orchestrator.db.models import Task
    from cloudbench.protocol import ErrorType

    migrate.upgrade(db_url, "0001")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, external_id, ruby_version, tasks_per_instance_type,"
                " instances_per_instance_type, benchmarks, spec, status, removed_tasks,"
                " archive_state) VALUES (1, 5, '3.4', 2, 1, '{}', '{}', 'completed', 0, 'none')"
            )
        )
        for task_id, error_type in ((1, "boom"), (2, "timeout")):
            conn.execute(
                text(
                    "INSERT INTO tasks (id, run_id, provider, instance_type, alias, run_number,"
                    " status, lease, error_type, error_message)"
                    " VALUES (:id, 1, 'local', 'm', 'm', :id, 'failed', 1, :type, 'it broke')"
                ),
                {"id": task_id, "type": error_type},
            )
    migrate.upgrade(db_url)
    with Session(engine) as session:
        tasks = list(session.execute(select(Task).order_by(Task.id)).scalars())
    assert [t.error_type for t in tasks] == [ErrorType.runner_error, ErrorType.timeout]
    assert tasks[0].error_message == "reported error_type: boom\nit broke"
    assert tasks[1].error_message == "it broke"
    engine.dispose()


def test_stored_runs_keep_only_allowlisted_extra_args(db_url: str) -> None:
    """A run stored before the allowlist would be a 500 when read (and a command for every
    runner when claimed): migration 0005 keeps only the options the allowlist accepts."""
    import json

    from sqlalchemy import text

    migrate.upgrade(db_url, "0003")
    engine = create_engine(db_url)
    bad = {
        "categories": ["headline"],
        "executables": ["yjit"],
        "extra_args": ["-e", "pwn::/bin/sh -c id", "--rss", "--harness=/tmp/h"],
    }
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, external_id, ruby_version, tasks_per_instance_type,"
                " instances_per_instance_type, benchmarks, spec, status, removed_tasks,"
                " archive_state, max_attempts)"
                " VALUES (1, 5, '3.4', 2, 1, :b, '{}', 'running', 0, 'none', 2)"
            ),
            {"b": json.dumps(bad)},
        )
    migrate.upgrade(db_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT benchmarks FROM runs WHERE id = 1")).scalar_one()
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert stored["extra_args"] == ["--rss"]
    assert stored["categories"] == ["headline"]
    engine.dispose()

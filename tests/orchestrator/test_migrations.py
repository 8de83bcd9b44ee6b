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

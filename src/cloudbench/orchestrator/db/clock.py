"""The database's clock, so every server process and the sweeper agree on time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, literal_column
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

# SQLite has no timestamp type: store the same text format SQLAlchemy writes, so that
# string comparison orders correctly.
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f000"


def db_now(session: Session) -> ColumnElement[Any]:
    return now_for(session.get_bind().dialect.name)


def now_for(dialect: str) -> ColumnElement[Any]:
    """The database clock for a dialect (statements built once need no session)."""
    if dialect == "sqlite":
        return func.strftime(_SQLITE_FORMAT, "now")  # one value per statement
    # The statement's start, not clock_timestamp(): every column one statement sets to
    # "now" gets the same instant (a machine's first report had first_seen_at 1 µs past
    # its stage_since), and unlike now() it moves on with each statement of a transaction.
    return func.statement_timestamp()


def db_now_minus(session: Session, seconds: float) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime(_SQLITE_FORMAT, "now", f"-{float(seconds)} seconds")
    return func.statement_timestamp() - literal_column(f"interval '{float(seconds)} seconds'")

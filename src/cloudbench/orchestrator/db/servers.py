"""Server uptime in the database, so the sweeper never blames runners for an outage.

Each orchestrator process keeps one row: ``up_since`` (start of its current unbroken
stretch of database contact) and ``last_seen_at``. Runner silence only counts while some
server could have heard the runner: the sweeper measures it from the start of the
unbroken stretch of server uptime that reaches now (merged over every process's rows).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, delete, insert, select, type_coerce, update
from sqlalchemy.orm import Session

from cloudbench.orchestrator.db.clock import db_now, db_now_minus
from cloudbench.orchestrator.db.models import ServerProcess, UTCDateTime

# Rows of processes gone for longer than this no longer matter to anyone.
PRUNE_AFTER_SECONDS = 86_400.0


def mark_alive(*, session: Session, server_id: str, gap_seconds: float) -> None:
    """Record that server_id reaches the database now.

    Silence of more than gap_seconds since its last mark (a database outage, a stalled
    process) starts a new stretch: runners could not be heard in between either.
    """
    now = db_now(session)
    stale = ServerProcess.last_seen_at < db_now_minus(session, gap_seconds)
    updated = session.execute(
        update(ServerProcess)
        .where(ServerProcess.id == server_id)
        .values(
            up_since=case((stale, now), else_=ServerProcess.up_since),
            last_seen_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(insert(ServerProcess).values(id=server_id, up_since=now, last_seen_at=now))
    session.execute(
        delete(ServerProcess).where(
            ServerProcess.last_seen_at < db_now_minus(session, PRUNE_AFTER_SECONDS)
        )
    )


def up_for_seconds(*, session: Session, gap_seconds: float) -> float:
    """How long some server process has been up without a break, up to now (0 if none).

    A row counts as up until gap_seconds after its last mark; stretches of different
    processes join only where they overlap, so any moment with no server up breaks it.
    """
    now = session.execute(select(type_coerce(db_now(session), UTCDateTime()))).scalar_one()
    rows = session.execute(select(ServerProcess.up_since, ServerProcess.last_seen_at)).all()
    return _unbroken_since(now, [(a, b) for a, b in rows], timedelta(seconds=gap_seconds))


def _unbroken_since(
    now: datetime, stretches: list[tuple[datetime, datetime]], grace: timedelta
) -> float:
    start = now
    alive_until = now - grace  # only stretches reaching now count at first
    changed = True
    while changed:
        changed = False
        for up_since, last_seen in stretches:
            if up_since < start and last_seen >= alive_until:
                start, changed = up_since, True
        # Earlier stretches must overlap the one we extended (no grace between rows).
        alive_until = start
    return max(0.0, (now - start).total_seconds())

"""Dashboard sessions ended by logout, and failed logins per client (the throttle).

In the database, so every server process (one per CPU on Postgres) sees the same.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from cloudbench.orchestrator.db.clock import db_now, db_now_minus
from cloudbench.orchestrator.db.models import LoginFailure, RevokedSession

# At most MAX_FAILED_LOGINS refused logins per client within LOGIN_WINDOW_SECONDS.
LOGIN_WINDOW_SECONDS = 300
MAX_FAILED_LOGINS = 10


def login_retry_after(*, session: Session, client: str) -> int | None:
    """Seconds until `client` may try to log in again, or None when it may now."""
    recent = (LoginFailure.client == client) & (
        LoginFailure.failed_at > db_now_minus(session, LOGIN_WINDOW_SECONDS)
    )
    count = session.scalar(select(func.count()).select_from(LoginFailure).where(recent)) or 0
    if count < MAX_FAILED_LOGINS:
        return None
    oldest = session.scalar(
        select(LoginFailure.failed_at).where(recent).order_by(LoginFailure.failed_at).limit(1)
    )
    if oldest is None:
        return None
    free_at = oldest + timedelta(seconds=LOGIN_WINDOW_SECONDS)
    return max(1, math.ceil((free_at - datetime.now(UTC)).total_seconds()))


def record_login_failure(*, session: Session, client: str) -> None:
    session.execute(insert(LoginFailure).values(client=client, failed_at=db_now(session)))
    old = LoginFailure.failed_at < db_now_minus(session, LOGIN_WINDOW_SECONDS)
    session.execute(delete(LoginFailure).where(old))


def revoke_session(*, session: Session, sid: str, max_age: int) -> None:
    """Logout: the session's cookie stops working everywhere at once."""
    now = datetime.now(UTC)
    session.execute(delete(RevokedSession).where(RevokedSession.expires_at < now))
    if session.get(RevokedSession, sid) is None:
        session.add(RevokedSession(sid=sid, expires_at=now + timedelta(seconds=max_age)))


def is_revoked(*, session: Session, sid: str) -> bool:
    return session.get(RevokedSession, sid) is not None

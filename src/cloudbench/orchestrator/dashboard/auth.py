"""Dashboard login: the admin token buys a signed session cookie; forms carry a CSRF token.

The session is an itsdangerous-signed random id, so any server process can check it;
logout records the id as revoked in the database (db/dashboard.py), so a copied cookie
stops working at logout, not 12 hours later. The CSRF token is an HMAC of that id:
bound to the session, never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from cloudbench.orchestrator.db import dashboard as db_dashboard
from cloudbench.orchestrator.errors import Forbidden
from cloudbench.orchestrator.settings import OrchestratorSettings

logger = logging.getLogger(__name__)

COOKIE_NAME = "cloudbench_session"
# Long enough for a working day of watching a run; re-login afterwards.
SESSION_MAX_AGE = 12 * 3600


def _settings(request: Request) -> OrchestratorSettings:
    settings: OrchestratorSettings = request.app.state.settings
    return settings


def _serializer(settings: OrchestratorSettings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.signing_key("dashboard"), salt="dashboard-session")


def start_session(request: Request, response: Response) -> None:
    settings = _settings(request)
    value = _serializer(settings).dumps({"sid": secrets.token_urlsafe(32)})
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="strict",
        # A cookie marked Secure would never come back over plain-http test setups.
        secure=(settings.public_url or "").startswith("https://"),
        path="/",
    )


def end_session(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")


def session_id(request: Request, session: Session) -> str | None:
    """The logged-in session's id, or None (no cookie, bad signature, expired, logged out)."""
    raw = request.cookies.get(COOKIE_NAME)
    if not raw:
        return None
    try:
        data = _serializer(_settings(request)).loads(raw, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    sid = data.get("sid") if isinstance(data, dict) else None
    if not isinstance(sid, str) or not sid or len(sid) > 64:
        return None
    return None if db_dashboard.is_revoked(session=session, sid=sid) else sid


def client_key(request: Request) -> str:
    """Who a login attempt comes from, for the throttle: the peer address."""
    return (request.client.host if request.client else "unknown")[:64]


def csrf_token(request: Request, sid: str) -> str:
    key = _settings(request).signing_key("dashboard-csrf")
    return hmac.new(key, sid.encode(), hashlib.sha256).hexdigest()


def check_csrf(request: Request, sid: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(given.encode(), csrf_token(request, sid).encode()):
        logger.warning("dashboard POST %s refused: bad CSRF token", request.url.path)
        raise Forbidden("missing or invalid CSRF token")

"""Dashboard routes: login/logout, the page, its live fragment and "End run early".

Cookie-authenticated on purpose: the page never calls the bearer-token API.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.orm import Session

from cloudbench.orchestrator.api.deps import RunIdPath, RunIdQuery, SessionDep
from cloudbench.orchestrator.archive_worker import schedule_archive
from cloudbench.orchestrator.dashboard import auth
from cloudbench.orchestrator.dashboard.report import REPORT_HEADERS, ReportUnavailable, report_html
from cloudbench.orchestrator.dashboard.view import RunView, build_view
from cloudbench.orchestrator.db import dashboard as db_dashboard
from cloudbench.orchestrator.db import runs as db_runs
from cloudbench.orchestrator.db.models import Run
from cloudbench.orchestrator.errors import Conflict, NotFound, Unauthorized
from cloudbench.orchestrator.settings import OrchestratorSettings
from cloudbench.platform.timefmt import duration

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
RECENT_RUNS = 30
# A page number of the run's task rows (view.PAGE_SIZE each); past the last is the last.
PageQuery = Annotated[int, Query(ge=1, le=1_000_000)]
# Fixed texts only: the query string picks one, it never supplies the words.
NOTICES = {
    "stopped": "Run stopped: pending tasks removed, running tasks cancelled.",
    "already-stopped": "The run was already stopped.",
    "already-completed": "The run had already completed; nothing to stop.",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
router = APIRouter(tags=["dashboard"], include_in_schema=False)


templates.filters["duration"] = partial(duration, missing="never", sep=" ", precise=True)


def _html(
    template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    body = templates.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _settings(request: Request) -> OrchestratorSettings:
    settings: OrchestratorSettings = request.app.state.settings
    return settings


def _pick_run(session: Session, run_id: int | None) -> Run | None:
    if run_id is not None:
        return db_runs.get_run(session=session, external_id=run_id, missing_ok=True)
    latest = db_runs.list_runs(session=session, limit=1)
    return latest[0] if latest else None


def _view(request: Request, session: Session, run_id: int | None, page: int) -> RunView | None:
    run = _pick_run(session, run_id)
    if run is None:
        return None
    settings = _settings(request)
    storage = request.app.state.storage
    return build_view(session, run, storage, settings.heartbeat_timeout, page)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, session: SessionDep) -> Response:
    if auth.session_id(request, session):
        return _redirect("/")
    return _html("login.html", error=None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request, session: SessionDep, token: Annotated[str, Form(max_length=512)] = ""
) -> Response:
    client = auth.client_key(request)
    wait = db_dashboard.login_retry_after(session=session, client=client)
    if wait is not None:
        logger.warning("dashboard login throttled for %s (%d s)", client, wait)
        error = f"Too many failed logins from your address; try again in {wait} s."
        return _html("login.html", status=429, headers={"Retry-After": str(wait)}, error=error)
    if not _settings(request).token_matches(token, "admin"):
        logger.warning("dashboard login refused from %s", client)
        db_dashboard.record_login_failure(session=session, client=client)
        session.commit()
        return _html("login.html", status=401, error="That is not the admin token.")
    response = _redirect("/")
    auth.start_session(request, response)
    return response


@router.post("/logout")
def logout(
    request: Request, session: SessionDep, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    sid = auth.session_id(request, session)
    if sid is None:
        return _redirect("/login")
    auth.check_csrf(request, sid, csrf_token)
    db_dashboard.revoke_session(session=session, sid=sid, max_age=auth.SESSION_MAX_AGE)
    session.commit()
    response = _redirect("/login")
    auth.end_session(response)
    return response


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request,
    session: SessionDep,
    run_id: RunIdQuery = None,
    notice: str = "",
    page: PageQuery = 1,
) -> Response:
    sid = auth.session_id(request, session)
    if sid is None:
        return _redirect("/login")
    view = _view(request, session, run_id, page)
    return _html(
        "index.html",
        status=404 if run_id is not None and view is None else 200,
        view=view,
        runs=db_runs.list_runs(session=session, limit=RECENT_RUNS),
        selected=view.run.run_id if view else None,
        requested=run_id,
        notice=NOTICES.get(notice),
        csrf=auth.csrf_token(request, sid),
    )


@router.get("/dashboard/fragment", response_class=HTMLResponse)
def fragment(
    request: Request, session: SessionDep, run_id: RunIdQuery = None, page: PageQuery = 1
) -> Response:
    sid = auth.session_id(request, session)
    if sid is None:
        raise Unauthorized("log in at /login")
    view = _view(request, session, run_id, page)
    if view is None:
        raise NotFound("run not found")
    return _html("_run.html", view=view, csrf=auth.csrf_token(request, sid))


@router.post("/dashboard/runs/{run_id}/stop")
def stop(
    run_id: RunIdPath,
    request: Request,
    session: SessionDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    sid = auth.session_id(request, session)
    if sid is None:
        return _redirect("/login")
    auth.check_csrf(request, sid, csrf_token)
    try:
        _, changed = db_runs.stop_run(session=session, external_id=run_id)
    except Conflict:
        return _redirect(f"/?run_id={run_id}&notice=already-completed")
    session.commit()
    if changed:
        logger.info("run %s stopped from the dashboard", run_id)
        schedule_archive(request.app)
    return _redirect(f"/?run_id={run_id}&notice={'stopped' if changed else 'already-stopped'}")


@router.get("/dashboard/runs/{run_id}/report", response_class=HTMLResponse)
def report(run_id: RunIdPath, request: Request, session: SessionDep) -> Response:
    """The finished run's `cloudbench report` page, built from its archive."""
    if auth.session_id(request, session) is None:
        return _redirect("/login")
    run = db_runs.get_run(session=session, external_id=run_id, missing_ok=True)
    if run is None:
        raise NotFound("run not found")
    session.rollback()  # the build takes seconds: hold no transaction open meanwhile
    try:
        body = report_html(request.app.state.storage, run_id)
    except ReportUnavailable as exc:
        return _html("report_missing.html", status=404, run_id=run_id, reason=str(exc))
    return HTMLResponse(body, headers=REPORT_HEADERS)


@router.get("/dashboard/static/{name}")
def static(name: str) -> Response:
    # A fixed allow-list: the name never reaches the filesystem unchecked.
    media_type = STATIC.get(name)
    if media_type is None:
        raise NotFound("no such file")
    return FileResponse(HERE / "static" / name, media_type=media_type)

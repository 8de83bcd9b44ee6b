"""`GET /dist/`: the project's own wheel, so runners install the orchestrator's version.

Open without a token on purpose: a fresh cloud runner installs the wheel before it can
read its token (which the wheel's dependencies fetch from SSM), and the wheel holds only
public code, never configuration or secrets.
"""

from __future__ import annotations

import html
import re

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from cloudbench.orchestrator.api.deps import SettingsDep
from cloudbench.orchestrator.api.responses import errors
from cloudbench.orchestrator.errors import NotFound

router = APIRouter(tags=["dist"], responses=errors(404))
_WHEEL = re.compile(r"^[A-Za-z0-9_.+-]+\.whl$")


@router.get("/dist/", response_class=HTMLResponse)
def index(settings: SettingsDep) -> HTMLResponse:
    """A PEP 503-style page of links that `pip --find-links` understands."""
    if settings.dist_dir is None or not settings.dist_dir.is_dir():
        raise NotFound("no wheels are served here (CLOUDBENCH_DIST_DIR is not set)")
    links = "".join(
        f'<a href="{html.escape(p.name)}">{html.escape(p.name)}</a><br>\n'
        for p in sorted(settings.dist_dir.glob("*.whl"))
    )
    return HTMLResponse(f"<!doctype html><html><body>\n{links}</body></html>")


@router.get("/dist/{name}")
def wheel(name: str, settings: SettingsDep) -> FileResponse:
    if settings.dist_dir is None or not _WHEEL.match(name):
        raise NotFound(f"no such wheel: {name}")
    path = settings.dist_dir / name
    if not path.is_file():
        raise NotFound(f"no such wheel: {name}")
    return FileResponse(path, media_type="application/octet-stream", filename=name)

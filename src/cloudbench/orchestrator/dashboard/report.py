"""A finished run's report, for the dashboard: built once from the run's archive by
`cloudbench report` in its own process (the orchestrator never imports the report), and
kept in storage next to the archive.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from cloudbench.orchestrator.storage.base import Storage, archive_key
from cloudbench.platform.tarsafe import safe_extract

logger = logging.getLogger(__name__)

BUILD_TIMEOUT = 600.0
# What the report page may do: run its own inline scripts (plotly is inlined), nothing
# else. `sandbox` gives it an opaque origin: its scripts cannot reach the dashboard's
# cookies or API.
REPORT_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'; sandbox allow-scripts allow-downloads"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


class ReportUnavailable(Exception):
    """No report can be built (no archive, or `cloudbench report` failed): says why."""


def report_key(run_id: int) -> str:
    return f"results/{run_id}/report.html"


def _lock(run_id: int) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(run_id, threading.Lock())


def report_html(storage: Storage, run_id: int) -> bytes:
    """The run's report page, built on first request; one build per run at a time."""
    key = report_key(run_id)
    with _lock(run_id):
        if not storage.exists(key):
            _build(storage, run_id, key)
        with storage.open_read(key) as stream:
            return stream.read()


def _results_folder(root: Path) -> Path:
    found = sorted(root.rglob("manifest.json"), key=lambda p: len(p.parts))
    if not found:
        raise ReportUnavailable("the archive holds no manifest.json")
    return found[0].parent


def _environment() -> dict[str, str]:
    """What the report process needs, and none of the orchestrator's secrets."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_CACHE_HOME")
    return {"COLUMNS": "120", **{k: v for k in keep if (v := os.environ.get(k)) is not None}}


def _build(storage: Storage, run_id: int, key: str) -> None:
    if not storage.exists(archive_key(run_id)):
        raise ReportUnavailable("the run's results archive is not built yet")
    with tempfile.TemporaryDirectory(prefix=f"cloudbench-report-{run_id}-") as work:
        root = Path(work)
        with storage.open_read(archive_key(run_id)) as stream:
            safe_extract(stream, root / "results")
        out = root / "report"
        folder = _results_folder(root / "results")
        command = [
            sys.executable,
            "-m",
            "cloudbench",
            "report",
            str(folder),
            "--offline",
            "--out",
            str(out),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=_environment()
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ReportUnavailable(f"cloudbench report did not finish: {exc}") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise ReportUnavailable(f"cloudbench report failed: {last}")
        storage.put_file(key, out / "index.html")
        logger.info("run %d: report built from its archive", run_id)

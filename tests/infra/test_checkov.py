"""checkov over infrastructure/: zero failed checks; every inline skip states its reason."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

INFRA = Path(__file__).resolve().parents[2] / "infrastructure"
SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def _checkov() -> str:
    # The checkov installed in this venv, next to the interpreter running the tests.
    local = Path(sys.executable).parent / "checkov"
    found = str(local) if local.exists() else shutil.which("checkov")
    # A dev dependency (uv.lock): missing means a broken environment, not a reason to skip.
    assert found is not None, "checkov is not installed: run `uv sync`"
    return found


def _reports(stdout: str) -> list[dict[str, Any]]:
    parsed = json.loads(stdout)
    # One framework gives an object, several give a list.
    return parsed if isinstance(parsed, list) else [parsed]


def test_checkov_finds_no_failed_checks() -> None:
    # --skip-download: no network round trip for Prisma Cloud guidelines.
    proc = subprocess.run(
        [_checkov(), "-d", str(INFRA), "--quiet", "--compact", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr[-2000:]
    failed = []
    for report in _reports(proc.stdout):
        summary = report.get("summary", {})
        assert summary.get("parsing_errors", 0) == 0, summary
        failed += [
            f"{c['check_id']} {c['resource']} ({c['file_path']})"
            for c in report.get("results", {}).get("failed_checks", [])
        ]
    assert failed == [], "\n".join(failed)
    assert proc.returncode == 0


def test_every_inline_skip_has_a_written_reason() -> None:
    skips = []
    for path in INFRA.rglob("*.tf"):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = SKIP.search(line)
            if match:
                skips.append((path.name, match.group(1), (match.group(2) or "").strip()))
    assert skips
    for name, check, reason in skips:
        assert len(reason) >= 20, f"{name}: skip of {check} without a real reason"

"""`cloudbench <command>` imports only that command's component (cli.py's LAZY table)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from cloudbench.cli import app
try:
    app(sys.argv[1:], prog_name="cloudbench")
except SystemExit:
    pass
heavy = ("fastapi", "sqlalchemy", "numpy", "scipy", "cloudbench.master.run")
print(json.dumps([m for m in heavy if m in sys.modules]))
"""


def _loaded(*argv: str) -> tuple[list[str], str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60
    )
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stdout


@pytest.mark.parametrize("argv", [("runner", "--help"), ("nuke", "--help")])
def test_a_command_loads_only_its_component(argv: tuple[str, ...]) -> None:
    loaded, out = _loaded(*argv)
    assert "Usage:" in out
    assert loaded == [], loaded


def test_help_lists_every_command_and_a_typo_gets_suggestions() -> None:
    _, out = _loaded("--help")
    for name in ("orchestrator", "run", "status", "nuke", "report", "runner"):
        assert f" {name} " in out, out
    typo = subprocess.run(
        [sys.executable, "-m", "cloudbench", "runr"], capture_output=True, text=True, timeout=60
    )
    assert typo.returncode == 2 and "Did you mean 'run', 'runner'?" in typo.stderr, typo.stderr

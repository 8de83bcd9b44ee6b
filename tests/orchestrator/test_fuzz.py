"""Schema-driven fuzzing of the whole API (schemathesis): bad input is never a 500.

Every operation of the OpenAPI document is called with generated valid and invalid
inputs, with each token, against a real orchestrator process on Postgres.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.orchestrator.helpers import create_run
from tests.orchestrator_proc import OrchestratorProcess

# Its own OS process: reads the server process's log for tracebacks.

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


@pytest.mark.parametrize("role", ["admin", "runner"])
def test_no_server_errors(
    orchestrator_server_process: OrchestratorProcess, role: str, tmp_path: Path
) -> None:
    orch = orchestrator_server_process
    create_run(orch.client())  # so some generated ids hit real rows
    token = orch.admin_token if role == "admin" else orch.runner_token
    out = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{orch.url}/openapi.json",
            "-H",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error",
            # 12 inputs per operation and token: every operation's schema is still
            # exercised; 40 made it the suite's most CPU-hungry test after the soak.
            "--max-examples",
            "12",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its cache: not in the repo
    )
    assert out.returncode == 0, out.stdout[-4000:]
    assert " passed" in out.stdout and "generated" in out.stdout
    assert "Traceback" not in orch.log_tail()


def test_absurd_ids_are_4xx(orchestrator_server_process: OrchestratorProcess) -> None:
    orch = orchestrator_server_process
    admin, runner = orch.client(), orch.client(role="runner")
    huge = 10**30
    assert admin.get(f"/runs/{huge}").status_code == 422
    assert admin.post(f"/runs/-{huge}/stop").status_code == 422
    hb = {"runner_id": "r", "status": "running"}
    assert runner.post(f"/tasks/{huge}/heartbeat", json=hb).status_code == 422
    resp = runner.post("/tasks/1/heartbeat", json={**hb, "lease": huge})
    assert resp.status_code == 422 and "lease" in resp.json()["error"]

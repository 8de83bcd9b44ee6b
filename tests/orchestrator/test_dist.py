"""`GET /dist/`: pip installs the project's wheel straight from the orchestrator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.orchestrator_inproc import OrchestratorFactory

ROOT = Path(__file__).resolve().parents[2]
# uv venvs have no pip; the interpreter they were made from does (as on a fresh runner).
BASE_PYTHON = str(Path(sys.base_prefix) / "bin" / "python3")


def test_pip_downloads_the_served_wheel(
    sqlite_url: str, tmp_path: Path, orchestrator_factory: OrchestratorFactory
) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        ["uv", "build", "--wheel", "--out-dir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    orch = orchestrator_factory(
        sqlite_url, server="in_process", extra_env={"CLOUDBENCH_DIST_DIR": str(dist)}
    )
    page = httpx.get(f"{orch.url}/dist/")
    assert page.status_code == 200 and ".whl" in page.text
    dest = tmp_path / "got"
    subprocess.run(
        [
            BASE_PYTHON,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--dest",
            str(dest),
            "--find-links",
            f"{orch.url}/dist/",
            "cloudbench",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (got,) = list(dest.glob("cloudbench-*.whl"))
    assert got.read_bytes() == next(dist.glob("*.whl")).read_bytes()
    assert httpx.get(f"{orch.url}/dist/..%2Fsecret.whl").status_code == 404
    assert httpx.get(f"{orch.url}/dist/nothing.whl").status_code == 404

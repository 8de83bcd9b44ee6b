"""The machine reports of the newest run, as the meta deployment's orchestrator lists them
(GET /runs, then GET /runs/{id}/machines, with the admin token from the meta stack's
outputs).

    python -m tests.twin.machines META_WORKDIR   # prints the JSON answer

Test tooling for the twin's end-to-end tests; it runs inside the twin's environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from cloudbench.platform.tls import pinned_context


def main(workdir: Path) -> None:
    raw = subprocess.run(
        ["terraform", "output", "-json"], cwd=workdir, capture_output=True, text=True, check=True
    ).stdout
    out = {name: item["value"] for name, item in json.loads(raw).items()}
    url = str(out.get("orchestrator_private_url") or out["orchestrator_url"]).rstrip("/")
    headers = {"Authorization": f"Bearer {out['admin_token']}"}
    # The orchestrator serves HTTPS only, with the deployment's certificate (pinned).
    verify = pinned_context(str(out["orchestrator_tls_certificate"]))
    with httpx.Client(base_url=url, headers=headers, timeout=30, verify=verify) as client:
        runs = client.get("/runs").raise_for_status().json()["runs"]
        newest = max(run["run_id"] for run in runs)
        print(client.get(f"/runs/{newest}/machines").raise_for_status().text)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

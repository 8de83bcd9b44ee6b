"""What the meta deployment's orchestrator answers to clients with and without its pin.

    python -m tests.twin.tlsprobe META_WORKDIR   # prints JSON

From the twin's machine (a client on the VPC's network), at the orchestrator's private
URL: the pinned certificate (as the master connects), plain HTTP at the same port, the
system's CAs, another self-signed certificate, and the master's client with that other
certificate (its one-line refusal). No token is sent on any probe but the pinned one.
Test tooling for the twin's end-to-end test; it runs inside the twin's environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from cloudbench.master.client import OrchestratorClient
from cloudbench.platform.tls import make_certificate, pinned_context


def _try(url: str, verify: Any) -> dict[str, Any]:
    try:
        response = httpx.get(url, verify=verify, timeout=10)
    except httpx.HTTPError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "status": response.status_code}


def main(workdir: Path) -> None:
    raw = subprocess.run(
        ["terraform", "output", "-json"], cwd=workdir, capture_output=True, text=True, check=True
    ).stdout
    out = {name: item["value"] for name, item in json.loads(raw).items()}
    url = str(out["orchestrator_private_url"]).rstrip("/")
    cert = str(out["orchestrator_tls_certificate"])
    other, _ = make_certificate()
    plain = "http://" + url.split("://", 1)[1]
    result: dict[str, Any] = {
        "url": url,
        "public_url": out["orchestrator_url"],
        "pinned": _try(f"{url}/up", pinned_context(cert)),
        "plain_http": _try(f"{plain}/up", True),
        "system_cas": _try(f"{url}/up", True),
        "other_cert": _try(f"{url}/up", pinned_context(other)),
    }
    with OrchestratorClient(url, str(out["admin_token"]), cert_pem=other) as client:
        try:
            client.send("GET", "/runs")
            result["master_other_cert"] = "accepted"
        except Exception as exc:  # the one line the master prints
            result["master_other_cert"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

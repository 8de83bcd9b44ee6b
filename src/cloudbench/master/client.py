"""The master's client for the orchestrator's admin API."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import httpx

from cloudbench.platform.http import ApiClient
from cloudbench.platform.http import ApiError as _Base
from cloudbench.platform.tls import also_trust, client_verify
from cloudbench.protocol import (
    SUITE_PREFIX,
    MachineList,
    MachineReleased,
    RunCreated,
    RunOut,
    SuiteStored,
    TaskList,
)

logger = logging.getLogger(__name__)

CHUNK = 1 << 20


class ApiError(_Base):
    """The orchestrator answered with an error that retrying will not fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message, prefix="orchestrator said")


TLS_FIX = (
    "the master pins the certificate it made for this deployment (secrets.json beside the "
    "meta stack's state); if the deployment was replaced by hand, run "
    "`cloudbench nuke --provider aws` and deploy again"
)


class OrchestratorClient(ApiClient):
    tls_fix = TLS_FIX

    def __init__(
        self, url: str, admin_token: str, retry_for: float = 60.0, cert_pem: str | None = None
    ) -> None:
        # cert_pem: the deployment's pinned certificate; None: the system's CAs (a domain,
        # or an orchestrator on loopback over plain HTTP).
        timeout = httpx.Timeout(30.0, connect=5.0)
        super().__init__(url, admin_token, timeout, verify=client_verify(cert_pem))
        self.retry_for = retry_for
        self.cert_pem = cert_pem

    def api_error(self, status: int, message: str) -> ApiError:
        return ApiError(status, message)

    def _retrying(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # Retries only what may heal: connection trouble and 5xx (orchestrator starting).
        return self.send_retrying(
            method, path, give_up_after=self.retry_for, max_backoff=5, multiplier=0.2, **kwargs
        )

    def create_run(self, body: dict[str, Any]) -> RunCreated:
        return RunCreated.model_validate(self._retrying("POST", "/runs", json=body).json())

    def get_run(self, run_id: int, retry: bool = False) -> RunOut:
        call = self._retrying if retry else self.send
        return RunOut.model_validate(call("GET", f"/runs/{run_id}").json())

    def tasks(self, run_id: int) -> TaskList:
        return TaskList.model_validate(self._retrying("GET", f"/runs/{run_id}/tasks").json())

    def machines(self, run_id: int) -> MachineList:
        """Every machine's last boot report (one try: the watch loop polls again)."""
        return MachineList.model_validate(self.send("GET", f"/runs/{run_id}/machines").json())

    def machine_lost(self, run_id: int, instance_id: str, reason: str) -> MachineReleased:
        """Hand a failed machine's tasks to another one now (instance_terminated)."""
        body = {"reason": reason[:2000]}
        path = f"/runs/{run_id}/machines/{instance_id}/lost"
        return MachineReleased.model_validate(self._retrying("POST", path, json=body).json())

    def put_suite(self, run_id: int, packed: Path) -> SuiteStored:
        """Store the packed ruby-bench suite with the run (runners without the bucket fetch
        it there); the orchestrator checks and records the sha256 sent with it."""
        body = packed.read_bytes()
        params = {"sha256": hashlib.sha256(body).hexdigest()}
        headers = {"Content-Type": "application/gzip"}
        path = f"{SUITE_PREFIX}{run_id}"
        response = self._retrying("PUT", path, params=params, content=body, headers=headers)
        return SuiteStored.model_validate(response.json())

    def stop_run(self, run_id: int) -> RunOut:
        return RunOut.model_validate(self._retrying("POST", f"/runs/{run_id}/stop").json())

    def stop_type(self, run_id: int, provider: str, alias: str, reason: str) -> RunOut:
        """Stop one instance type (its runners all failed); the run goes on."""
        body = {"provider": provider, "alias": alias, "reason": reason[:2000]}
        response = self._retrying("POST", f"/runs/{run_id}/stop", json=body)
        return RunOut.model_validate(response.json())


def download(url: str, dest: Path, cert_pem: str | None = None) -> int:
    """Stream a presigned URL to dest (no Authorization header: the URL is the credential);
    `cert_pem`: the orchestrator's pinned certificate, trusted besides the system's CAs."""
    size = 0
    timeout = httpx.Timeout(60.0, connect=10.0)
    with (
        httpx.stream("GET", url, timeout=timeout, verify=also_trust(cert_pem)) as response,
        dest.open("wb") as out,
    ):
        if response.status_code != 200:
            raise ApiError(response.status_code, f"archive download: {response.read()[:200]!r}")
        for chunk in response.iter_bytes(CHUNK):
            out.write(chunk)
            size += len(chunk)
    return size

"""moto's standalone server in this process, and the EC2 vCPU quotas moto lacks.

moto (the twin's AWS) implements Service Quotas for the `vpc` service only: asked for an
EC2 quota such as L-1216C47A it answers NoSuchResourceException, which the product
reports as "not checked". `ec2_quotas` makes this process's moto answer chosen values,
the way an account's applied quotas would; everything else is moto's real server.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from moto.server import ThreadedMotoServer
from moto.servicequotas.models import ServiceQuotasBackend

from tests.pg import free_port


@contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


_SHARED: list[str] = []


def shared_moto() -> str:
    """One moto server for this test process (started on first use), reset each call."""
    if not _SHARED:
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        server.start()
        atexit.register(server.stop)
        _SHARED.append(f"http://127.0.0.1:{port}")
    httpx.post(f"{_SHARED[0]}/moto-api/reset").raise_for_status()
    return _SHARED[0]


class _EmptyCatalogue(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"FormatVersion": "aws_v1", "PriceList": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


_PRICING: list[str] = []


def shared_pricing() -> str:
    """A stand-in for AWS's Price List API that knows no products (what it answers for a
    type it does not sell). moto has no `pricing`: every GetProducts was a 500 that boto3
    retried for ~10 s per instance type, in every master run against moto. Tests of the
    look-up itself answer real-shaped products (tests/platform/standins.py)."""
    if not _PRICING:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyCatalogue)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        atexit.register(server.shutdown)
        _PRICING.append(f"http://127.0.0.1:{server.server_address[1]}")
    return _PRICING[0]


def aws_env(url: str, region: str) -> dict[str, str]:
    """The standard settings that point boto3 (and Terraform) at the emulated account;
    the Price List API (boto3's AWS_ENDPOINT_URL_PRICING) at shared_pricing()."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ENDPOINT_URL_PRICING": shared_pricing(),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def use_aws(monkeypatch: pytest.MonkeyPatch, url: str, region: str) -> None:
    httpx.post(f"{url}/moto-api/reset").raise_for_status()
    for name, value in aws_env(url, region).items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


# moto's own answer, kept before any test runs: an in-process twin (tests/twin/core.py)
# patches moto for good, and a later test in the same worker must still see moto's own.
MOTO_GET_SERVICE_QUOTA = ServiceQuotasBackend.get_service_quota


def ec2_quotas(monkeypatch: pytest.MonkeyPatch, values: dict[str, float]) -> None:
    """This process's moto answers these EC2 quota values (applied values, per code)."""
    original = MOTO_GET_SERVICE_QUOTA

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        if service_code == "ec2" and quota_code in values:
            return {
                "ServiceCode": "ec2",
                "QuotaCode": quota_code,
                "Value": values[quota_code],
                "Unit": "None",
                "Adjustable": True,
                "GlobalQuota": False,
                "QuotaName": f"twin quota {quota_code}",
            }
        return original(self, service_code, quota_code)

    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", get_service_quota)

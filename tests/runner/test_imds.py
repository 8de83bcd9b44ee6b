"""IMDSv2 identity lookup. AWS's metadata service cannot exist here, so a small HTTP
server stands in for it, enforcing the IMDSv2 token handshake like the real one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cloudbench.runner.cli import resolve_instance, resolve_instance_type
from cloudbench.runner.imds import ENDPOINT_ENV, MetadataUnavailable, read_identity

TOKEN = "tok-123"


class _Imds(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        ok = self.path == "/latest/api/token" and self.headers.get(
            "X-aws-ec2-metadata-token-ttl-seconds"
        )
        self._send(200 if ok else 400, TOKEN if ok else "")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self._send(401, "")  # IMDSv1 (no token) is refused, as with http_tokens=required
            return
        values = {
            "/latest/meta-data/instance-type": "c7g.large",
            "/latest/meta-data/instance-id": "i-0abc",
            "/latest/meta-data/placement/region": "eu-central-1",
            "/latest/meta-data/placement/availability-zone": "eu-central-1b",
            "/latest/meta-data/ami-id": "ami-0123456789abcdef0",
            "/latest/meta-data/instance-life-cycle": "spot",
            # no placement/host-id: not a Dedicated Host, so IMDS answers 404
            "/latest/dynamic/instance-identity/document": (
                '{"instanceId": "i-0abc", "pendingTime": "2026-12-07T10:00:00Z"}'
            ),
        }
        self._send(200 if self.path in values else 404, values.get(self.path, ""))

    def _send(self, code: int, body: str) -> None:
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv(ENDPOINT_ENV, url)
    yield url
    server.shutdown()


def test_reads_type_and_id_with_a_token(imds: str) -> None:
    identity = read_identity()
    assert (identity.instance_type, identity.instance_id) == ("c7g.large", "i-0abc")
    assert resolve_instance_type("aws", None) == "c7g.large"
    assert resolve_instance_type("aws", "m7i.large") == "m7i.large"
    assert resolve_instance_type("local", None) == "local"


def test_unreachable_metadata_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:9")
    with pytest.raises(MetadataUnavailable, match="pass --instance-type"):
        resolve_instance_type("aws", None)


def test_provenance_for_metadata(imds: str) -> None:
    facts = resolve_instance("aws", "c7g.large-alias-type")
    assert facts == {
        "provider": "aws",
        "instance_type": "c7g.large-alias-type",
        "instance_type_reported": "c7g.large",
        "instance_id": "i-0abc",
        "region": "eu-central-1",
        "zone": "eu-central-1b",
        "image_id": "ami-0123456789abcdef0",
        "lifecycle": "spot",
        "tenancy": None,
        "host_id": None,
        "launched_at": "2026-12-07T10:00:00Z",
    }
    assert resolve_instance("local", None) == {
        "provider": "local",
        "instance_type": "local",
        "instance_type_reported": None,
    }

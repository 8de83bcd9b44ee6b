"""A stand-in for Azure's Instance Metadata Service, for one twin VM (tests/twin/azure.py).

Runs in the VM container's own network namespace (started with `nsenter -n`), bound to
169.254.169.254:80 there, so the address exists only inside that VM, as on Azure. What
the azure stack's cloud-init asks, answered as Azure documents it:

- every request must carry `Metadata: true` (else 400) and an `api-version` (else 400);
- `/metadata/instance/compute[/FIELD]` with `format=text` or JSON;
- `/metadata/identity/oauth2/token?resource=R&client_id=C`: a bearer token for resource
  R of the user-assigned identity C (another client id: 400 "Identity not found"). The
  tokens come from the doc, so the Key Vault and ARM stand-ins can check them.

Standard library only: it runs as a plain script.

    python azure_imds.py DOC.json   # {"compute": {...}, "identity": {"client_id", "tokens"}}
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ADDRESS = "169.254.169.254"


class Handler(BaseHTTPRequestHandler):
    doc: dict[str, Any] = {}

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("azure-imds: " + (format % args) + "\n")

    def _send(self, status: int, body: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        data = text.encode()
        self.send_response(status)
        kind = "text/plain" if isinstance(body, str) else "application/json"
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if self.headers.get("Metadata", "").lower() != "true":
            return self._send(400, {"error": "Bad request. Required metadata header not specified"})
        if "api-version" not in query:
            return self._send(400, {"error": "Bad request. api-version was not specified"})
        if url.path == "/metadata/identity/oauth2/token":
            return self._token(query)
        prefix = "/metadata/instance/compute"
        if not url.path.startswith(prefix):
            return self._send(404, {"error": "Not found"})
        compute: dict[str, str] = self.doc["compute"]
        field = url.path[len(prefix) :].strip("/")
        if not field:
            return self._send(200, compute)
        if field not in compute:
            return self._send(404, {"error": "Not found"})
        text = query.get("format") == "text"
        return self._send(200, compute[field] if text else json.dumps(compute[field]))

    def _token(self, query: dict[str, str]) -> None:
        identity: dict[str, Any] = self.doc["identity"]
        if query.get("client_id", identity["client_id"]) != identity["client_id"]:
            return self._send(
                400, {"error": "invalid_request", "error_description": "Identity not found"}
            )
        resource = query.get("resource", "").rstrip("/")
        token = identity["tokens"].get(resource)
        if token is None:
            return self._send(400, {"error": "invalid_resource", "resource": resource})
        body = {
            "access_token": token,
            "client_id": identity["client_id"],
            "expires_in": "86399",
            "resource": query["resource"],
            "token_type": "Bearer",
        }
        return self._send(200, body)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        Handler.doc = json.load(handle)
    server = ThreadingHTTPServer((ADDRESS, 80), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()

"""The twin's instance metadata service (IMDSv2) for one VM.

Runs in the VM container's own network namespace (the twin starts it with `nsenter -n`),
bound to 169.254.169.254:80 there, so the address exists only inside that VM. Standard
library only: it runs as a plain script. A session token (PUT /latest/api/token) is
required for every read, as with `http_tokens = "required"`.

    python imds.py DOC.json   # {"meta-data": {path: value}, "user-data-base64": "...", ...}
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ADDRESS = "169.254.169.254"
TOKENS: dict[str, float] = {}  # token -> expiry (monotonic)


def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


class Handler(BaseHTTPRequestHandler):
    doc: dict[str, Any] = {}
    doc_path = ""

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("imds: " + (format % args) + "\n")

    def _send(self, status: int, body: str | bytes, kind: str = "text/plain") -> None:
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token":
            return self._send(404, "Not Found")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self._send(400, "Bad Request")
        token = secrets.token_urlsafe(32)
        TOKENS[token] = time.monotonic() + int(ttl)
        self._send(200, token)

    def do_GET(self) -> None:
        token = self.headers.get("X-aws-ec2-metadata-token", "")
        if TOKENS.get(token, 0.0) < time.monotonic():
            return self._send(401, "Unauthorized")
        doc = _load(self.doc_path)  # re-read: the twin updates credentials and state
        path = self.path.split("?", 1)[0]
        if path == "/latest/user-data":
            if not doc.get("user-data-base64"):
                return self._send(404, "Not Found")
            data = base64.b64decode(doc["user-data-base64"])
            return self._send(200, data, "application/octet-stream")
        if path == "/latest/dynamic/instance-identity/document":
            return self._send(200, json.dumps(doc.get("identity", {})), "application/json")
        prefix = "/latest/meta-data/"
        if not path.startswith(prefix):
            return self._send(404, "Not Found")
        key = path[len(prefix) :]
        meta: dict[str, str] = doc.get("meta-data", {})
        if key in meta:
            return self._send(200, meta[key])
        listing = sorted(
            {
                k[len(key) :].split("/")[0] + ("/" if "/" in k[len(key) :] else "")
                for k in meta
                if k.startswith(key)
            }
        )
        if listing and (key == "" or key.endswith("/")):
            return self._send(200, "\n".join(listing))
        return self._send(404, "Not Found")


def main() -> None:
    Handler.doc_path = sys.argv[1]
    server = ThreadingHTTPServer((ADDRESS, 80), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()

"""A small local stand-in for Azure Resource Manager's resource-group API, over HTTPS.

No Azure Resource Manager emulator exists, so the tests talk to this instead. It speaks
the wire format the real SDK expects: tag-filtered listing with nextLink paging, DELETE
answered 202 + Location + Retry-After, the operation polled until done, ARM error bodies,
429/503 throttling answers, bearer-token checks, and an App Service-style managed-identity
token endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER) so DefaultAzureCredential's real
chain can get a token in a subprocess. HTTPS because azure-core refuses bearer tokens
over plain HTTP; the certificate is self-signed and trusted through REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PAGE = 2  # groups per page, so a handful of groups needs nextLink
GROUPS = re.compile(r"^/subscriptions/([^/]+)/resourcegroups/?$", re.IGNORECASE)
GROUP = re.compile(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)$", re.IGNORECASE)
OPERATION = re.compile(r"^/operations/([0-9a-f]+)$")
SKUS = re.compile(r"^/subscriptions/([^/]+)/providers/Microsoft.Compute/skus$", re.IGNORECASE)
USAGES = re.compile(
    r"^/subscriptions/([^/]+)/providers/Microsoft.Compute/locations/([^/]+)/usages$", re.IGNORECASE
)


def vm_sku(
    name: str,
    location: str,
    arch: str,
    premium: bool,
    generations: str = "V1,V2",
    controllers: str | None = None,
) -> dict[str, Any]:
    """A Resource SKUs API entry, shaped as ARM returns one for a VM size (v6 sizes list
    `DiskControllerTypes: NVMe`; older ones list nothing, meaning SCSI)."""
    caps = {
        "CpuArchitectureType": arch,
        "PremiumIO": str(premium),
        "vCPUs": "2",
        "HyperVGenerations": generations,
    }
    if controllers is not None:
        caps["DiskControllerTypes"] = controllers
    parts = name.split("_")  # Standard_D2pls_v6 -> standardDPLSv6Family, as ARM names it
    family = "standard" + re.sub(r"\d+", "", parts[1]).upper() + "".join(parts[2:]) + "Family"
    return {
        "resourceType": "virtualMachines",
        "name": name,
        "tier": "Standard",
        "locations": [location],
        "restrictions": [],
        "family": family,
        "locationInfo": [{"location": location, "zones": ["3", "1", "2"]}],
        "capabilities": [{"name": k, "value": v} for k, v in caps.items()],
    }


@dataclass
class Group:
    name: str
    tags: dict[str, str]
    state: str = "Succeeded"
    # How deletion goes: "ok", "locked" (409 at DELETE), "blocked" (the operation fails).
    mode: str = "ok"


@dataclass
class World:
    subscription: str
    identity_header: str = field(default_factory=lambda: secrets.token_hex(8))
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    groups: dict[str, Group] = field(default_factory=dict)
    operations: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (group, polls)
    # One-shot throttling answers, consumed in order: (method, status).
    throttle: list[tuple[str, int]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    skus: list[dict[str, Any]] = field(default_factory=list)
    # Compute usages by location (ARM's shape); a location not here answers 404.
    usages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, tags: dict[str, str], mode: str = "ok") -> None:
        self.groups[name] = Group(name, tags, mode=mode)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class Handler(BaseHTTPRequestHandler):
    world: World
    base: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _throttled(self) -> bool:
        with self.world.lock:
            for i, (method, status) in enumerate(self.world.throttle):
                if method == self.command:
                    del self.world.throttle[i]
                    self.world.log.append(f"{self.command} {status}")
                    self._send(status, _error("Throttled", "slow down"), {"Retry-After": "1"})
                    return True
        return False

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.world.token}":
            self._send(401, _error("AuthenticationFailed", "bad or missing bearer token"))
            return False
        return True

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/msi/token":
            return self._token(query)
        if not self._authorized() or self._throttled():
            return
        if m := GROUPS.match(url.path):
            return self._list(m.group(1), query)
        if m := OPERATION.match(url.path):
            return self._poll(m.group(1))
        if m := SKUS.match(url.path):
            return self._skus(query)
        if (m := USAGES.match(url.path)) and m.group(2) in self.world.usages:
            return self._send(200, {"value": self.world.usages[m.group(2)]})
        self._send(404, _error("NotFound", url.path))

    def do_DELETE(self) -> None:
        url = urlsplit(self.path)
        if not self._authorized() or self._throttled():
            return
        m = GROUP.match(url.path)
        if not m or m.group(1) != self.world.subscription:
            return self._send(404, _error("NotFound", url.path))
        with self.world.lock:
            group = self.world.groups.get(m.group(2))
            if group is None:
                return self._send(404, _error("ResourceGroupNotFound", m.group(2)))
            self.world.log.append(f"DELETE {group.name}")
            if group.mode == "locked":
                return self._send(409, _error("ScopeLocked", f"{group.name} has a delete lock"))
            group.state = "Deleting"
            op = secrets.token_hex(6)
            self.world.operations[op] = (group.name, 0)
        location = f"{self.base}/operations/{op}"
        self._send(202, None, {"Location": location, "Retry-After": "1"})

    def _token(self, query: dict[str, str]) -> None:
        if self.headers.get("X-IDENTITY-HEADER") != self.world.identity_header:
            return self._send(401, {"error": "bad identity header"})
        expires = int(time.time()) + 3600
        body = {
            "access_token": self.world.token,
            "expires_on": str(expires),
            "resource": query.get("resource", ""),
            "token_type": "Bearer",
        }
        self._send(200, body)

    def _list(self, subscription: str, query: dict[str, str]) -> None:
        if subscription != self.world.subscription:
            return self._send(404, _error("SubscriptionNotFound", subscription))
        wanted = re.fullmatch(r"tagName eq '(.+)' and tagValue eq '(.+)'", query.get("$filter", ""))
        with self.world.lock:
            groups = sorted(self.world.groups.values(), key=lambda g: g.name)
            if wanted:
                groups = [g for g in groups if g.tags.get(wanted.group(1)) == wanted.group(2)]
            self.world.log.append(f"LIST {query.get('$skiptoken', '0')}")
        start = int(query.get("$skiptoken", "0"))
        page = groups[start : start + PAGE]
        body: dict[str, Any] = {"value": [self._group(g) for g in page]}
        if start + PAGE < len(groups):
            rest = {k: v for k, v in query.items() if k != "$skiptoken"}
            qs = "&".join(f"{k}={v}" for k, v in rest.items())
            body["nextLink"] = (
                f"{self.base}{urlsplit(self.path).path}?{qs}&$skiptoken={start + PAGE}"
            )
        self._send(200, body)

    def _skus(self, query: dict[str, str]) -> None:
        wanted = re.fullmatch(r"location eq '(.+)'", query.get("$filter", ""))
        self.world.log.append(f"SKUS {query.get('$filter', '')}")
        skus = [s for s in self.world.skus if not wanted or wanted.group(1) in s["locations"]]
        # Two pages, as the real API pages its long answer.
        half = len(skus) // 2
        if query.get("page") == "2":
            return self._send(200, {"value": skus[half:]})
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        next_link = f"{self.base}{urlsplit(self.path).path}?{qs}&page=2"
        self._send(200, {"value": skus[:half], "nextLink": next_link})

    def _group(self, g: Group) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{self.world.subscription}/resourceGroups/{g.name}",
            "name": g.name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": "westeurope",
            "tags": g.tags,
            "properties": {"provisioningState": g.state},
        }

    def _poll(self, op: str) -> None:
        with self.world.lock:
            if op not in self.world.operations:
                return self._send(404, _error("NotFound", op))
            name, polls = self.world.operations[op]
            self.world.operations[op] = (name, polls + 1)
            group = self.world.groups[name]
            if polls < 1:  # still running on the first poll
                return self._send(
                    202, None, {"Location": f"{self.base}/operations/{op}", "Retry-After": "1"}
                )
            if group.mode == "blocked":
                group.state = "Succeeded"
                return self._send(
                    409, _error("ResourceGroupDeletionBlocked", f"{name}: a resource refused")
                )
            del self.world.groups[name]
        self._send(200, None)


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "arm-standin")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "standin.pem", directory / "standin.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Standin:
    """The server on 127.0.0.1 in a thread; `url`, `ca` (the PEM to trust), `world`."""

    def __init__(self, directory: Path, subscription: str) -> None:
        self.ca, key = self_signed(directory)
        self.world = World(subscription)
        handler: type[Handler] = type("H", (Handler,), {"world": self.world})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        handler.base = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Standin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

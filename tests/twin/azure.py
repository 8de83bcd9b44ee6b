"""Azure, as far as one runner VM's cloud-init sees it, on this machine (test_azure_boot.py).

The azure stack itself cannot be applied here (no azurerm provider on the machine), so its
cloud-init is rendered by the real `terraform` (`templatefile()` through `terraform
console`, which needs no provider) and booted in the AWS twin's VM image, with:

- stand-in Azure IMDS (azure_imds.py) in the VM's own network namespace;
- stand-in Key Vault (`GET /secrets/NAME`) and ARM (`POST …/deallocate`) behind one TLS
  listener on the VM network's gateway, port 443, under their real host names (the VM's
  /etc/hosts points them there; a CA made per test is the VM's trust store). Both check the
  bearer token the IMDS issued for their resource;
- an orchestrator address on the VM network forwarding to a real orchestrator on loopback
  (HTTPS with the pinned certificate from a non-local host, as a VM sees the meta
  stack's public URL).

The VM network is `--internal`: nothing a VM sends leaves this machine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VAULT = "https://vault.azure.net"
ARM = "https://management.azure.com"
ARM_HOST = "management.azure.com"


def render(template: Path, variables: dict[str, Any], workdir: Path) -> str:
    """`base64encode(templatefile(…))` as the stack's custom_data, by the real terraform
    (in an empty `workdir`: the expression needs no provider, the stack's folder would)."""
    args = ", ".join(f"{k} = {json.dumps(v)}" for k, v in variables.items())
    expr = f"base64encode(templatefile({json.dumps(str(template))}, {{ {args} }}))\n"
    workdir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["terraform", f"-chdir={workdir}", "console", "-no-color"],
        input=expr,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "CHECKPOINT_DISABLE": "1"},
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"terraform console failed: {result.stderr}")
    return result.stdout.strip().strip('"')


def make_tls(directory: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A CA (the VM's whole trust store) and a certificate for `names`: (ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            sans = [x509.DNSName(n) for n in names]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloudbench twin Azure CA")])
    ca_cert = cert("cloudbench twin Azure CA", ca_key, ca_name, ca_key, ca=True)
    leaf = cert(names[0], key, ca_name, ca_key, ca=False)
    paths = directory / "ca.pem", directory / "tls.pem", directory / "tls.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class AzureCloud:
    """Key Vault and ARM stand-ins: what they were asked, and with which token."""

    vault_host: str
    secrets: dict[str, str]
    tokens: dict[str, str]  # resource -> the bearer token IMDS issues for it
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # host, path, status
    deallocated: list[str] = field(default_factory=list)  # resource ids
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, method: str, host: str, path: str, bearer: str) -> tuple[int, Any]:
        status, body = self._route(method, host.split(":")[0], path, bearer)
        with self.lock:
            self.calls.append((host, f"{method} {path}", status))
        return status, body

    def _route(self, method: str, host: str, path: str, bearer: str) -> tuple[int, Any]:
        if host == self.vault_host:
            resource, found = VAULT, re.fullmatch(r"/secrets/([\w-]+)\?api-version=7\.\d", path)
            ok = method == "GET" and found is not None
        elif host == ARM_HOST:
            pattern = r"(/subscriptions/[^?]+/virtualMachines/[^/?]+)/deallocate\?api-version=.+"
            resource, found = ARM, re.fullmatch(pattern, path)
            ok = method == "POST" and found is not None
        else:
            return 404, {"error": f"no such host {host}"}
        if bearer != self.tokens[resource]:
            return 401, {"error": {"code": "Unauthorized", "message": "token missing or wrong"}}
        if not ok or found is None:
            return 404, {"error": {"code": "NotFound"}}
        if resource == ARM:
            with self.lock:
                self.deallocated.append(found.group(1))
            return 202, ""
        name = found.group(1)
        if name not in self.secrets:
            return 404, {"error": {"code": "SecretNotFound"}}
        return 200, {"value": self.secrets[name], "id": f"https://{host}/secrets/{name}/1"}


def serve_tls(cloud: AzureCloud, address: str, cert: Path, key: Path) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            auth = self.headers.get("Authorization", "")
            bearer = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
            status, body = cloud.handle(self.command, self.headers["Host"], self.path, bearer)
            data = json.dumps(body).encode() if body != "" else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _any

    server = ThreadingHTTPServer((address, 443), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="azure-tls", daemon=True).start()
    return server


class Forward:
    """address:port -> 127.0.0.1:target, byte for byte (the orchestrator's public address)."""

    def __init__(self, address: str, port: int, target: int) -> None:
        self.target = target
        self.listener = socket.create_server((address, port))
        self.url = f"http://{address}:{port}"
        threading.Thread(target=self._accept, name="forward", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def free_internal_subnet() -> ipaddress.IPv4Network:
    """A /24 no podman network overlaps (the twin's 10.N.0.0/16 search, one size down)."""
    from tests.twin.core import free_subnet

    return next(free_subnet().subnets(new_prefix=24))

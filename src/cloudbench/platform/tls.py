"""The orchestrator's own TLS certificate, and clients that trust exactly that one.

A cloud deployment without a domain name has no certificate authority to vouch for it,
so the master makes a key and a self-signed certificate once per deployment (kept with
its other secrets), the orchestrator serves HTTPS with them, and every client trusts
that certificate and nothing else (a pin): the master, the runners (a CA file) and the
runners' boot scripts (curl --cacert, pip --cert).

The certificate names `TLS_NAME` and loopback. The runners' boot scripts reach the
orchestrator under that name (mapped to its address in /etc/hosts), so curl and pip
verify it as usual. The Python clients (master, runner) connect to an address the
certificate cannot know in advance (the elastic IP comes later), so their pinned
context skips only the name check: the chain must still end in this very certificate,
whose key only the orchestrator has.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import httpx

# The name runners use for the orchestrator, and the certificate's DNS name.
TLS_NAME = "cloudbench-orchestrator"
VALID_DAYS = 3650  # the deployment lives until `cloudbench nuke`; no renewal exists


def make_certificate(names: tuple[str, ...] = (TLS_NAME,)) -> tuple[str, str]:
    """(certificate PEM, private key PEM): P-256, self-signed, for `names` and 127.0.0.1."""
    # Only the master makes certificates: runners never import cryptography.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def pinned_context(cert_pem: str, check_name: bool = False) -> ssl.SSLContext:
    """A client context that trusts `cert_pem` alone (no system CAs)."""
    context = ssl.create_default_context(cadata=cert_pem)
    context.check_hostname = check_name
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def also_trust(cert_pem: str | None) -> ssl.SSLContext | bool:
    """For presigned storage URLs: the system's CAs (S3) and the pin too (an orchestrator
    that stores results itself serves them under its own certificate; names checked)."""
    if not cert_pem:
        return True
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=cert_pem)
    return context


def client_verify(cert_pem: str | None) -> ssl.SSLContext | bool:
    """httpx's `verify`: the pin when there is one, else the system's CAs."""
    return pinned_context(cert_pem) if cert_pem else True


def refusal(exc: BaseException, url: str, fix: str) -> str | None:
    """One line when `exc` is a failed certificate check, or a server that answered an
    HTTPS handshake in plain HTTP (`fix` says what to do); None for anything else."""
    text = str(exc)
    if not isinstance(exc, httpx.ConnectError):
        return None
    if "WRONG_VERSION_NUMBER" in text:
        return f"orchestrator {url}: answers in plain HTTP, not HTTPS (made before TLS?); {fix}"
    if "CERTIFICATE_VERIFY_FAILED" not in text:
        return None
    why = text.split("certificate verify failed:")[-1].split("(_ssl")[0].strip(" ()")
    return f"orchestrator {url}: its TLS certificate is not the trusted one ({why}); {fix}"

"""TLS to a cloud orchestrator: `serve --tls-cert/--tls-key` serves HTTPS only, and the
master's and the runner's clients trust the deployment's own certificate and nothing else.

Real: the orchestrator (`cloudbench orchestrator serve`, its own process, SQLite) on
loopback, certificates made as the master makes them (platform/tls.py), httpx.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cloudbench.master.client import OrchestratorClient as MasterClient
from cloudbench.master.providers.base import ProviderError
from cloudbench.master.stacks import MetaOutputs, wait_up
from cloudbench.platform.http import TlsRefused
from cloudbench.platform.tls import make_certificate
from cloudbench.runner.client import OrchestratorClient as RunnerClient
from cloudbench.runner.settings import RunnerSettings
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess


@pytest.fixture
def tls_orch(
    tmp_path: Path, sqlite_url: str, orchestrator_factory: OrchestratorFactory
) -> OrchestratorProcess:
    cert, key = make_certificate()
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    pair = (tmp_path / "cert.pem", tmp_path / "key.pem")
    return orchestrator_factory(sqlite_url, server="process", tls=pair)


def _cert(orch: OrchestratorProcess) -> str:
    assert orch.tls is not None
    return orch.tls[0].read_text()


def test_the_pinned_master_works_and_cleartext_is_refused(tls_orch: OrchestratorProcess) -> None:
    assert tls_orch.url.startswith("https://")
    with MasterClient(tls_orch.url, tls_orch.admin_token, cert_pem=_cert(tls_orch)) as api:
        assert api.send("GET", "/runs").json()["runs"] == []
    # The same port in plain HTTP: no answer at all (the TLS handshake fails first).
    plain = tls_orch.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/up", timeout=10)
    # The system's CAs do not vouch for the deployment's certificate.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_orch.url}/up", timeout=10)


def test_another_certificate_is_refused_at_once_in_one_line_naming_the_fix(
    tls_orch: OrchestratorProcess,
) -> None:
    other, _ = make_certificate()
    started = time.monotonic()
    with (
        MasterClient(tls_orch.url, tls_orch.admin_token, retry_for=60, cert_pem=other) as api,
        pytest.raises(TlsRefused) as caught,
    ):
        api.create_run({"ruby_version": "3.4"})  # a retried call: not retried
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"orchestrator {tls_orch.url}: its TLS certificate is not the")
    assert "`cloudbench nuke --provider aws`" in message and "secrets.json" in message
    # Waiting for a deployment to come up stops at once too, with the same advice.
    with pytest.raises(ProviderError, match="cloudbench nuke --provider aws") as waited:
        wait_up(tls_orch.url, timeout=60, cert_pem=other)
    assert "\n" not in str(waited.value)
    assert time.monotonic() - started < 20


def test_the_runner_trusts_its_ca_file_alone(tls_orch: OrchestratorProcess, tmp_path: Path) -> None:
    good = tmp_path / "cert.pem"
    wrong = tmp_path / "other.pem"
    wrong.write_text(make_certificate()[0])
    # The name is checked too: the certificate carries 127.0.0.1 (and its DNS name).
    with RunnerClient(tls_orch.url, tls_orch.runner_token, ca_file=good) as client:
        assert client.send("GET", "/up").status_code == 200
    with (
        RunnerClient(tls_orch.url, tls_orch.runner_token, ca_file=wrong) as client,
        pytest.raises(TlsRefused, match="set CLOUDBENCH_TLS_CA_FILE"),
    ):
        client.send("GET", "/up")
    with pytest.raises(ValueError, match="tls_ca_file"):
        RunnerSettings(runner_token="x" * 20, tls_ca_file=tmp_path / "missing.pem")


def test_the_master_pins_at_addresses_and_trusts_the_cas_for_a_domain() -> None:
    cert, _ = make_certificate()
    out = MetaOutputs(
        url="https://203.0.113.5:8000",
        subnet_id="s",
        region="r",
        admin_token="a",
        runner_token="r",
        tls_cert=cert,
    )
    assert out.pin_for("https://10.42.0.10:8000") == cert
    assert out.pin_for(out.url) == cert
    assert out.pin_for("https://bench.example.org") is None


def test_serve_wants_both_the_certificate_and_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text(make_certificate()[0])
    proc = subprocess.run(
        [sys.executable, "-m", "cloudbench", "orchestrator", "serve", "--tls-cert", str(cert)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "CLOUDBENCH_ADMIN_TOKEN": secrets.token_urlsafe(32),
            "CLOUDBENCH_RUNNER_TOKEN": secrets.token_urlsafe(32),
            "CLOUDBENCH_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        },
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "error: --tls-cert and --tls-key go together; give both or neither"
    )


def test_a_plain_http_orchestrator_at_an_https_url_is_one_line_at_once(
    sqlite_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    """A deployment made before TLS serves plain HTTP where the outputs now say https."""
    plain = orchestrator_factory(sqlite_url, server="in_process")
    https = plain.url.replace("http://", "https://")
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        wait_up(https, timeout=60, cert_pem=make_certificate()[0])
    assert time.monotonic() - started < 10
    assert str(caught.value).startswith(f"orchestrator {https}: answers in plain HTTP")
    assert "cloudbench nuke --provider aws" in str(caught.value)

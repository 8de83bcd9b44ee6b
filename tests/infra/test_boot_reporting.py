"""The AWS runner user-data's boot reporting, executed (issue 23).

The rendered script runs as root in a private mount namespace (tmpfs over /var/log and
/opt, a pty bound over /dev/ttyS0 and /dev/console standing in for the serial console),
against the real orchestrator over HTTPS with the deployment's self-signed certificate
(the script maps the certificate's name to it in a private /etc/hosts; one test boots
over plain HTTP without a certificate, the domain-less branch), moto's server for SSM (the token is
read with boto3 as on the VM) and an IMDSv2 stand-in on loopback (no EC2 here; the
script honours boto3's AWS_EC2_METADATA_SERVICE_ENDPOINT, defaulting to 169.254.169.254).
`apt-get`, `systemctl` and `shutdown` are stand-ins that cannot run here: apt-get fails
to install docker.io, the boot step this test breaks; shutdown records its arguments.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.infra.test_terraform_static import (
    INFRA,
    RUNNER_VARS,
    TLS_CERT,
    TLS_KEY,
    render_template,
)
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import free_port

IMDS_TOKEN = "imds-tok"
APT = """#!/bin/sh
echo "apt-get $*"
case "$*" in *docker.io*) echo "E: Unable to locate package docker.io" >&2; exit 100;; esac
"""


class _Imds(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        self._send(200, IMDS_TOKEN if self.path == "/latest/api/token" else "")

    def do_GET(self) -> None:
        ok = self.headers.get("X-aws-ec2-metadata-token") == IMDS_TOKEN
        found = ok and self.path == "/latest/meta-data/instance-id"
        self._send(200 if found else 401, "i-0boot" if found else "")

    def _send(self, code: int, body: str) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def imds() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def moto() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                threading.Event().wait(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture(autouse=True)
def _root() -> None:
    # Missing fails, never skips: scripts/test and CI run as root.
    assert os.geteuid() == 0, "the boot script runs as root in a mount namespace: run as root"


def _boot(tmp: Path, orch: OrchestratorProcess, imds: str, moto: str, debug: str) -> dict[str, Any]:
    """Create a run, store its token in SSM, run the user-data; what happened."""
    with orch.client() as admin:
        body = {
            "ruby_version": "3.1",
            "per_instance_type": {"tasks": 1},
            "aws": [{"instance_type": "c7g.medium", "alias": "g3"}],
        }
        created = admin.post("/runs", json=body)
        assert created.status_code == 201, created.text
        run_id = created.json()["run_id"]
    env = {
        "PATH": f"{tmp / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp),
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds,
        "AWS_ENDPOINT_URL": moto,
        "AWS_ACCESS_KEY_ID": "fake",
        "AWS_SECRET_ACCESS_KEY": "fake",
    }
    parameter = f"/cloudbench/runs/{run_id}/runner-token"
    ssm = boto3.client(
        "ssm",
        region_name="eu-west-1",
        endpoint_url=moto,
        aws_access_key_id="fake",
        aws_secret_access_key="fake",
    )
    ssm.put_parameter(Name=parameter, Value=orch.runner_token, Type="SecureString")
    values = {
        **RUNNER_VARS,
        "orchestrator_url": orch.url,
        "region": "eu-west-1",
        "token_parameter": parameter,
        "run_id": str(run_id),
        "instance_type": "c7g.medium",
        "alias": "g3",
        "debug": debug,
        "tls_cert": TLS_CERT.strip() if orch.tls else "",
    }
    text = (INFRA / "providers/aws/templates/runner-user-data.sh.tftpl").read_text()
    script = tmp / "user-data.sh"
    script.write_text(render_template(text, values))
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    stubs = {
        "apt-get": APT,
        "systemctl": "#!/bin/sh\n",
        "shutdown": f'#!/bin/sh\necho "$*" >>{tmp}/shutdown\n',
    }
    for name, body_text in stubs.items():
        (bin_dir / name).write_text(body_text)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)  # has boto3, as python3-boto3 gives
    master, slave = os.openpty()
    tty = os.ttyname(slave)
    hosts = tmp / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    inner = (
        f"mount -t tmpfs none /var/log && mount -t tmpfs none /opt && "
        f"mount --bind {hosts} /etc/hosts && "
        f"mount --bind {tty} /dev/ttyS0 && mount --bind {tty} /dev/console && "
        f"exec bash {script}"
    )
    seen = bytearray()
    proc = subprocess.Popen(["unshare", "-m", "bash", "-c", inner], env=env)
    while proc.poll() is None:
        if select.select([master], [], [], 0.2)[0]:
            seen += os.read(master, 65536)
    while select.select([master], [], [], 0.2)[0]:
        seen += os.read(master, 65536)
    os.close(master)
    os.close(slave)
    with orch.client() as admin:
        machines = admin.get(f"/runs/{run_id}/machines").json()["machines"]
    shutdown = (tmp / "shutdown").read_text().splitlines()
    return {
        "hosts": hosts.read_text(),
        "code": proc.returncode,
        "console": seen.decode(errors="replace"),
        "machines": machines,
        "shutdown": shutdown,
    }


@pytest.fixture
def tls_orchestrator(
    tmp_path: Path, pg_url: str, orchestrator_factory: OrchestratorFactory
) -> OrchestratorProcess:
    """The real orchestrator serving HTTPS only, with the deployment's certificate."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text(TLS_CERT)
    key.write_text(TLS_KEY)
    return orchestrator_factory(pg_url, server="in_process", tls=(cert, key))


def test_a_failed_boot_reports_its_stage_and_last_lines_then_powers_off(
    tmp_path: Path, tls_orchestrator: OrchestratorProcess, imds: str, moto: str
) -> None:
    orchestrator_server = tls_orchestrator
    got = _boot(tmp_path, orchestrator_server, imds, moto, debug="false")
    # The reports below went over HTTPS, verified: the name maps to the orchestrator.
    assert orchestrator_server.url.startswith("https://127.0.0.1:")
    assert got["hosts"].endswith("127.0.0.1 cloudbench-orchestrator\n"), got["hosts"]
    assert got["code"] == 100, got
    [vm] = got["machines"]
    assert (vm["instance_id"], vm["provider"], vm["alias"]) == ("i-0boot", "aws", "g3")
    assert vm["instance_type"] == "c7g.medium"
    assert vm["stage"] == "error", vm
    assert vm["message"].startswith(
        "failed at step 'installing docker.io and python3-venv' (exit 100)"
    ), vm
    assert "E: Unable to locate package docker.io" in vm["log_tail"], vm
    port = orchestrator_server.port
    line = f"orchestrator https://cloudbench-orchestrator:{port} at 127.0.0.1 (pinned certificate)"
    assert line in vm["log_tail"], vm
    # It called in before it failed (boot, provision): the first report is older.
    assert vm["first_seen_at"] < vm["stage_since"], vm
    assert orchestrator_server.runner_token not in vm["log_tail"]
    # The serial console has the stages and the failure's last lines.
    console = got["console"]
    assert "cloudbench i-0boot: reading the runner token from SSM" in console, console
    assert "boot failed at step 'installing docker.io and python3-venv'" in console, console
    assert "E: Unable to locate package docker.io" in console, console
    assert got["shutdown"][0].startswith("-h +90 ")
    assert got["shutdown"][1:] == ["-h now cloudbench: runner finished or failed"], got


def test_with_debug_a_failed_boot_stays_up(
    tmp_path: Path, orchestrator_server: OrchestratorProcess, imds: str, moto: str
) -> None:
    got = _boot(tmp_path, orchestrator_server, imds, moto, debug="true")
    assert got["machines"][0]["stage"] == "error"
    assert "--debug: staying up until the hard lifetime" in got["console"], got
    assert len(got["shutdown"]) == 1 and got["shutdown"][0].startswith("-h +90 "), got

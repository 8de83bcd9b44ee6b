"""The azure stack's cloud-init, booted for real in the twin's VM image (issue 23's Azure note).

Real: the custom data exactly as the stack makes it (`base64encode(templatefile(…))`
evaluated by the real `terraform console`), a VM container from the AWS twin's image
running it as root (tests/twin/vm/azure-init), the runner wheel from a real orchestrator
over a podman network at a non-local address, over HTTPS with the deployment's pinned
self-signed certificate (as the master makes it, platform/tls.py; the cloud-init maps the
certificate's name to that address), the real runner registering and running a task end
to end (the small tests/fake_ruby_bench on the image's Ruby 3.1).

Stand-ins, because they cannot exist here (tests/twin/azure.py, azure_vm.py): Azure's
Instance Metadata Service (compute metadata, managed-identity tokens; `Metadata: true`
required), Key Vault (secret get) and ARM (VM deallocate), both checking the bearer token
the IMDS issued, on the VM's own network under their real host names with a per-test CA;
and the azurerm provider, absent from this machine: the stack is never applied, only its
template rendered. The VM runs on this machine's CPU, not an Azure size. The ruby-bench
suite (the small tests/fake_ruby_bench) reaches the VM as `--ruby-bench` ships it to Azure:
packed by the master's code, stored with the run at the orchestrator (PUT /ruby-bench),
its sha256 in the custom data; the VM downloads it with the runner token and checks it
(a third VM, whose custom data names another sha256, refuses the suite and reports why).
No twin lock: no moto, no Terraform apply, two small VM containers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cloudbench.master import wheelhouse, wheelpack
from cloudbench.master.client import OrchestratorClient
from cloudbench.master.providers.suite import ship
from cloudbench.platform.stacks import AwsSettings
from cloudbench.platform.tls import TLS_NAME, make_certificate
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import free_port
from tests.twin.azure import Forward, render
from tests.twin.azure_vm import AzureNet, azure_network, boot, computer_name
from tests.wheelhouse import wheelhouse_env

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infrastructure/providers/azure/templates/runner-cloud-init.sh.tftpl"
SUITE = ROOT / "tests" / "fake_ruby_bench"
SIZES = {"ok": "Standard_D2pls_v6", "broken": "Standard_D2as_v5", "tampered": "Standard_D2s_v5"}
# The "tampered" VM's custom data names another suite than the one stored: it must refuse.
OTHER_SHA256 = hashlib.sha256(b"another suite").hexdigest()
T = TypeVar("T")

pytestmark = [pytest.mark.timeout(300)]


@pytest.fixture
def net(tmp_path: Path) -> Iterator[AzureNet]:
    with azure_network(tmp_path) as made:
        yield made


def wait_for(what: str, check: Callable[[], T | None], timeout: float, dump: Any) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}:\n{dump()}")


def test_azure_cloud_init_boots_reports_its_cause_and_runs_a_task(
    net: AzureNet, sqlite_url: str, orchestrator_factory: OrchestratorFactory, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    build = ["uv", "build", "--wheel", "--out-dir", str(dist), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    port = free_port()
    public = f"https://{net.gateway}:{port}"  # the meta stack's public URL, as a VM sees it
    cert_pem, key_pem = make_certificate()
    cert, key = tmp_path / "orchestrator.pem", tmp_path / "orchestrator.key"
    cert.write_text(cert_pem)
    key.write_text(key_pem)
    orch = orchestrator_factory(
        sqlite_url,
        server="in_process",
        heartbeat_timeout=60,
        tls=(cert, key),
        # Upload links name the certificate's name, which the VM maps to the address.
        extra_env={
            "CLOUDBENCH_DIST_DIR": str(dist),
            "CLOUDBENCH_PUBLIC_URL": f"https://{TLS_NAME}:{port}",
        },
    )
    forward = Forward(net.gateway, port, orch.port)
    try:
        _boot_and_check(net, orch, public, cert_pem)
    finally:
        forward.close()


def _runner_pins() -> str:
    """What the master puts in runner_requirements (master/providers/driver.py), from the
    VM image's wheels (tests/wheelhouse.py: no PyPI here)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in wheelhouse_env().items():
            patch.setenv(name, value)
        settings = AwsSettings()
        return wheelpack.runner_versions(settings, wheelhouse.prepare(settings))["x86_64"]


def _boot_and_check(net: AzureNet, orch: OrchestratorProcess, public: str, cert: str) -> None:
    pins = _runner_pins()  # exactly these are installed: a missing one fails the runner
    assert "httpx==" in pins and "scipy" not in pins
    body = {
        "ruby_version": "3.1",
        "per_instance_type": {"tasks": 1},
        "azure": [{"instance_type": size, "alias": alias} for alias, size in SIZES.items()],
        "benchmarks": {"names": ["fib"], "executables": ["interp"], "bench_iterations": 1},
    }
    with orch.client() as admin:
        created = admin.post("/runs", json=body)
        assert created.status_code == 201, created.text
        run_id = created.json()["run_id"]
    net.cloud.secrets["runner-token"] = orch.runner_token
    # The master's side of --ruby-bench for Azure (master/providers/suite.py: ship).
    with OrchestratorClient(orch.url, orch.admin_token, cert_pem=cert) as api:
        sha256 = ship(str(SUITE), net.directory / "ruby-bench.tar.gz", api, run_id)
    folders = {}
    for alias, size in SIZES.items():
        client_id = str(uuid.uuid4())
        variables = {
            "max_lifetime_minutes": 30,
            "orchestrator_url": public,
            "vault_uri": f"https://{net.cloud.vault_host}/",
            "secret_name": "runner-token",
            "identity_client_id": client_id,
            "run_id": str(run_id),
            "alias": alias,
            "debug": "false",
            "heartbeat_interval": 5,
            "tls_cert": cert,
            "tls_name": TLS_NAME,
            "ruby_bench_sha256": OTHER_SHA256 if alias == "tampered" else sha256,
            # The stack looks the pins up by the size's architecture; every VM here is this
            # machine's x86_64 (the image's CPython 3.11), whatever its size's name says.
            "runner_requirements": pins,
        }
        custom_data = render(TEMPLATE, variables, net.directory / f"tf-{alias}")
        assert orch.runner_token not in base64.b64decode(custom_data).decode()
        env = {"CLIENT_ID": client_id}
        if alias == "broken":  # `apt-get install` fails, as with a broken mirror
            env["TWIN_FAIL_BOOT"] = "apt"
        folders[alias] = boot(net, f"cloudbench-7-{alias}-0", size, custom_data, env)

    def machines() -> dict[str, dict[str, Any]]:
        with orch.client() as admin:
            found = admin.get(f"/runs/{run_id}/machines").json()["machines"]
        return {m["alias"]: m for m in found}

    def tasks() -> dict[str, dict[str, Any]]:
        with orch.client() as admin:
            found = admin.get(f"/runs/{run_id}/tasks").json()["tasks"]
        return {t["alias"]: t for t in found}

    def dump() -> str:
        logs = {a: (f / "console.log").read_text(errors="replace") for a, f in folders.items()}
        state = {"machines": machines(), "tasks": tasks(), "calls": net.cloud.calls}
        return json.dumps({**state, "consoles": logs}, indent=1, default=str)

    # The failed boot: its cause (apt's error line, not the trap's own "failed at step"
    # line) reaches the orchestrator with the log tail; then the VM deallocates itself.
    broken = wait_for("the broken VM's error", lambda: _error(machines(), "broken"), 120, dump)
    assert (broken["provider"], broken["instance_type"]) == ("azure", SIZES["broken"])
    assert broken["instance_id"] == "cloudbench-7-broken-0", broken
    assert broken["message"] == (
        "failed at step 'installing docker.io and python3-venv' (exit 100): "
        "E: Unable to fetch some archives (twin: --fail-boot apt)"
    ), broken
    assert "E: Unable to fetch some archives" in broken["log_tail"], broken
    assert orch.runner_token not in broken["log_tail"]

    def deallocated() -> bool:
        return any(d.endswith("/cloudbench-7-broken-0") for d in net.cloud.deallocated)

    wait_for("the broken VM's deallocation through ARM", deallocated, 30, dump)
    console = (folders["broken"] / "console.log").read_text(errors="replace")
    assert "cloudbench-7-broken-0: boot failed at step 'installing docker.io" in console

    # The good VM: the token from Key Vault, the wheel over HTTPS (the pinned certificate)
    # from a non-local address, the runner registers, claims its type's task and runs it.
    def ended() -> dict[str, Any] | None:
        task = tasks()["ok"]
        failed = machines().get("ok", {}).get("stage") == "error"
        return task if failed or task["status"] in ("completed", "failed") else None

    done = wait_for("the ok VM's task", ended, 150, dump)
    assert done["status"] == "completed", dump()
    # The VM's /var/log is copied out when it powers off, just after its task ends.
    log = folders["ok"] / "var-log" / "cloudbench-runner.log"
    wait_for("the ok VM's power-off (its log copied out)", log.is_file, 60, dump)
    good = log.read_text(errors="replace")
    pinned = f"orchestrator https://{TLS_NAME}:{public.rsplit(':', 1)[1]} at "
    assert pinned in good and "(pinned certificate)" in good, good[-3000:]
    assert "cloudbench: fetching the shipped ruby-bench suite from the orchestrator" in good
    count = len(pins.splitlines())
    assert f"the runner's dependencies as the master pinned them ({count} packages)" in good
    assert "ruby-bench /opt/cloudbench/ruby-bench" in good, good[-3000:]  # the runner's suite
    assert "clon" not in good.lower(), good[-3000:]  # never cloned
    assert done["runner_host"] == computer_name("cloudbench-7-ok-0"), done
    ok = machines()["ok"]
    assert (ok["instance_id"], ok["instance_type"]) == ("cloudbench-7-ok-0", SIZES["ok"]), ok
    # A suite whose sha256 is not the one in the custom data is never unpacked or run.
    tampered = wait_for("the tampered VM's error", lambda: _error(machines(), "tampered"), 60, dump)
    assert tampered["message"] == (
        "failed at step 'fetching the shipped ruby-bench suite from the orchestrator' "
        f"(exit 1): cloudbench: the ruby-bench suite's sha256 is {sha256}, "
        f"not the shipped {OTHER_SHA256}"
    ), tampered
    assert tasks()["tampered"]["status"] == "pending"
    reads = [(path, status) for host, path, status in net.cloud.calls if "vault" in host]
    assert reads == [("GET /secrets/runner-token?api-version=7.4", 200)] * 3, reads
    assert tasks()["broken"]["status"] == "pending"  # no VM of that type ever ran it


def _error(machines: dict[str, dict[str, Any]], alias: str) -> dict[str, Any] | None:
    found = machines.get(alias)
    return found if found and found["stage"] == "error" else None

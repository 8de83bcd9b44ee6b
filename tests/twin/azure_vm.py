"""Azure runner VMs as containers (test_azure_boot.py): a network, stand-ins, VMs.

`azure_network()` makes an `--internal` podman network (the VMs reach this machine's side
of it and nothing beyond), with the Key Vault and ARM stand-ins (tests/twin/azure.py) on
its gateway. `boot()` starts one VM from the AWS twin's image (scripts/
standin-vm-image.sh) with tests/twin/vm/azure-init as PID 1, its custom data where the
Azure agent would find it, the stand-in IMDS in its own network namespace, the stand-ins'
host names in its /etc/hosts and the per-test CA as its whole trust store.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudbench.platform.cpulease import DEFAULT_DIR, lease_dir
from tests.containers import twin_vm_image
from tests.twin.azure import (
    ARM,
    ARM_HOST,
    VAULT,
    AzureCloud,
    free_internal_subnet,
    make_tls,
    serve_tls,
)
from tests.twin.core import VM_IMAGE
from tests.twin.vms import SECCOMP

HERE = Path(__file__).resolve().parent
SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
GROUP = "cloudbench-7"


@dataclass
class AzureNet:
    name: str
    gateway: str
    hosts: Iterator[Any]
    directory: Path
    cloud: AzureCloud
    ca: Path
    imds: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"cloudbench-twin={self.name}"


def _podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"podman {args[0]}: {done.stderr}"
    return done.stdout.strip()


@contextmanager
def azure_network(directory: Path) -> Iterator[AzureNet]:
    twin_vm_image()
    name = f"cbtwin-azure-{uuid.uuid4().hex[:8]}"
    subnet = free_internal_subnet()
    hosts = subnet.hosts()
    gateway = str(next(hosts))
    _podman(
        "network",
        "create",
        "--internal",
        "--subnet",
        str(subnet),
        "--gateway",
        gateway,
        "--label",
        "cloudbench-twin=1",
        name,
    )
    vault_host = f"cb-{secrets.token_hex(6)}.vault.azure.net"
    ca, cert, key = make_tls(directory, [vault_host, ARM_HOST])
    tokens = {VAULT: secrets.token_urlsafe(32), ARM: secrets.token_urlsafe(32)}
    net = AzureNet(name, gateway, hosts, directory, AzureCloud(vault_host, {}, tokens), ca)
    server = None
    try:
        # The bridge (and the gateway address the stand-ins bind) comes up with a container.
        hold = str(subnet.broadcast_address - 1)
        _podman(
            "run",
            "-d",
            "--name",
            f"{name}-hold",
            "--network",
            name,
            "--ip",
            hold,
            "--label",
            net.label,
            VM_IMAGE,
            "sleep",
            "infinity",
        )
        server = serve_tls(net.cloud, gateway, cert, key)
        yield net
    finally:
        for proc in net.imds:
            proc.terminate()
            proc.wait(timeout=10)
        if server is not None:
            server.shutdown()
            server.server_close()
        found = subprocess.run(
            ["podman", "ps", "-aq", "--filter", f"label={net.label}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if found:
            subprocess.run(["podman", "rm", "-f", "-t", "0", *found], capture_output=True)
        subprocess.run(["podman", "network", "rm", "-f", name], capture_output=True)


def computer_name(vm_name: str) -> str:
    """The VM's hostname, at most 15 characters, as the stack derives it."""
    return "cb-" + hashlib.sha1(vm_name.encode()).hexdigest()[:12]


def resource_id(vm_name: str) -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}"
        f"/providers/Microsoft.Compute/virtualMachines/{vm_name}"
    )


def boot(net: AzureNet, vm_name: str, size: str, custom_data: str, env: dict[str, str]) -> Path:
    """One VM (hostname = its computer name); its folder (console.log) is returned.

    env: the container's environment; CLIENT_ID in it is the VM's managed identity."""
    directory = net.directory / vm_name
    directory.mkdir()
    (directory / "custom-data").write_text(custom_data)
    compute = {
        "name": vm_name,
        "vmSize": size,
        "location": "westeurope",
        "zone": "1",
        "resourceId": resource_id(vm_name),
        "subscriptionId": SUBSCRIPTION,
        "resourceGroupName": GROUP,
        "vmId": str(uuid.uuid4()),
    }
    identity = {"client_id": env.pop("CLIENT_ID"), "tokens": net.cloud.tokens}
    (directory / "imds.json").write_text(json.dumps({"compute": compute, "identity": identity}))
    container = f"{net.name}-{vm_name}"
    shared = lease_dir()
    shared.mkdir(parents=True, exist_ok=True)
    mounts = {
        str(net.ca): "/etc/ssl/certs/ca-certificates.crt:ro",
        str(HERE / "vm"): "/twin:ro",
        str(directory): "/twin-vm",
        str(shared): str(DEFAULT_DIR),  # the machine's CPU leases, as twin VMs share them
    }
    _podman(
        "run",
        "-d",
        "--name",
        container,
        "--hostname",
        computer_name(vm_name),
        "--network",
        net.name,
        "--ip",
        str(next(net.hosts)),
        "--label",
        net.label,
        # The project's seccomp profile: `setarch -R` (ASLR off) as on a real VM.
        "--security-opt",
        f"seccomp={SECCOMP}",
        "--add-host",
        f"{net.cloud.vault_host}:{net.gateway}",
        "--add-host",
        f"{ARM_HOST}:{net.gateway}",
        *[a for host, inside in mounts.items() for a in ("-v", f"{host}:{inside}")],
        *[a for k, v in env.items() for a in ("-e", f"{k}={v}")],
        VM_IMAGE,
        "/twin/azure-init",
    )
    pid = _podman("inspect", "-f", "{{.State.Pid}}", container)
    for args in (["link", "set", "lo", "up"], ["addr", "add", "169.254.169.254/32", "dev", "lo"]):
        subprocess.run(["nsenter", "-t", pid, "-n", "ip", *args], check=True)
    command = ["nsenter", "-t", pid, "-n", sys.executable, str(HERE / "azure_imds.py")]
    with (directory / "imds.log").open("ab") as log:
        proc = subprocess.Popen(
            [*command, str(directory / "imds.json")],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    net.imds.append(proc)
    return directory

"""The AWS twin: moto's server, a podman network for the VMs, Terraform's CLI config.

Everything the twin makes lives under one state directory (logs included) and one podman
network named after it; `Twin.stop` removes the network and every VM container.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.pg import free_port
from tests.wheelhouse import twin_wheelhouse_env

log = logging.getLogger("twin")

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
CANONICAL = "099720109477"
PROVIDER_GLOB = "registry.terraform.io/hashicorp/aws/*/linux_amd64/terraform-provider-aws_*"
MIRROR_ENV = "CLOUDBENCH_TF_PROVIDER_MIRROR"
ENGINE_SOCKET = Path("/run/podman/podman.sock")
VM_IMAGE = "localhost/cloudbench-twin-vm:bookworm"


class TwinError(RuntimeError):
    pass


def find_mirror() -> Path:
    """The Terraform provider mirror: CLOUDBENCH_TF_PROVIDER_MIRROR, else searched for."""
    configured = os.environ.get(MIRROR_ENV)
    candidates = [Path(configured)] if configured else []
    if not configured:
        candidates = [Path("/opt/tf-plugins"), Path("/usr/share/terraform/plugins")]
        candidates += [Path.home() / ".terraform.d" / "plugins"]
    for base in candidates:
        if any(base.glob(PROVIDER_GLOB)):
            return base
    if configured:
        raise TwinError(f"{MIRROR_ENV}={configured} holds no {PROVIDER_GLOB}")
    found = subprocess.run(
        ["find", "/", "-xdev", "-name", "terraform-provider-aws_*", "-not", "-path", "/proc/*"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout.split()
    for hit in found:
        parts = Path(hit).parts
        if "registry.terraform.io" in parts:
            return Path(*parts[: parts.index("registry.terraform.io")])
    raise TwinError(
        "no Terraform AWS provider mirror on this machine; set "
        f"{MIRROR_ENV} to a folder holding {PROVIDER_GLOB}"
    )


def amis_file(dest: Path) -> Path:
    """moto's AMI catalogue plus the Ubuntu 24.04 images the stacks look up."""
    import moto

    base = Path(moto.__file__).parent / "ec2" / "resources" / "amis.json.gz"
    amis: list[dict[str, Any]] = json.loads(gzip.decompress(base.read_bytes()))
    for arch, ami in (("x86_64", "ami-0a1b2c3d4e5f60001"), ("arm64", "ami-0a1b2c3d4e5f60002")):
        name = "amd64" if arch == "x86_64" else "arm64"
        amis.append(
            {
                "ami_id": ami,
                "state": "available",
                "public": True,
                "owner_id": CANONICAL,
                "image_location": f"{CANONICAL}/ubuntu-noble-{name}",
                "root_device_type": "ebs",
                "root_device_name": "/dev/sda1",
                "description": f"Canonical, Ubuntu, 24.04, {name} noble image (twin)",
                "image_type": "machine",
                "platform": None,
                "architecture": arch,
                "name": f"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{name}-server-20250101",
                "virtualization_type": "hvm",
                "hypervisor": "xen",
                "creation_date": "2025-01-01T00:00:00.000Z",
            }
        )
    dest.write_text(json.dumps(amis))
    return dest


def free_subnet() -> ipaddress.IPv4Network:
    """A 10.N.0.0/16 VPC no podman network overlaps (the VMs' network is its /20)."""
    out = subprocess.run(
        ["podman", "network", "ls", "--format", "{{range .Subnets}}{{.Subnet}} {{end}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    used = [ipaddress.ip_network(s) for s in out if ":" not in s]
    for n in range(42, 80):
        vpc = ipaddress.IPv4Network(f"10.{n}.0.0/16")
        if not any(vpc.overlaps(u) for u in used):
            return vpc
    raise TwinError("no free 10.N.0.0/16 for the twin's VPC")


def _public_key() -> str:
    """A fresh OpenSSH public key (the private half is dropped: nobody logs in)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode() + " cloud-twin"


@dataclass
class Faults:
    fail_boot: dict[str, str] = field(default_factory=dict)  # alias -> stage
    kill_vm: dict[str, float] = field(default_factory=dict)  # alias -> seconds
    no_boot: set[str] = field(default_factory=set)
    # alias -> seconds: one VM of the type gets the spot interruption notice (issue 27)
    interrupt: dict[str, float] = field(default_factory=dict)
    vm_engine: bool = False  # not a fault: VMs use this machine's container engine
    vm_env: dict[str, str] = field(default_factory=dict)  # not a fault: every VM's environment

    def to_json(self) -> dict[str, Any]:
        return {
            "fail_boot": self.fail_boot,
            "kill_vm": self.kill_vm,
            "no_boot": sorted(self.no_boot),
            "interrupt": self.interrupt,
        }


class Twin:
    def __init__(self, state_dir: Path, faults: Faults) -> None:
        self.state_dir = state_dir.resolve()
        self.faults = faults
        self.name = f"cbtwin-{uuid.uuid4().hex[:8]}"
        self.vpc = free_subnet()
        self.subnet = next(self.vpc.subnets(new_prefix=20))
        self.gateway = str(next(self.subnet.hosts()))
        self.port = free_port()
        self.server: Any = None
        self.watcher: Any = None
        self.network_made = False
        self.ssh_key = _public_key()

    @property
    def endpoint(self) -> str:
        return f"http://{self.gateway}:{self.port}"

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "vms").mkdir(exist_ok=True)
        subprocess.run(
            [
                "podman",
                "network",
                "create",
                "--subnet",
                str(self.subnet),
                "--gateway",
                self.gateway,
                "--label",
                "cloudbench-twin=1",
                self.name,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        self.network_made = True
        # podman brings the bridge (and the gateway address moto binds to) up with the
        # first container on the network: one that only holds it open.
        subprocess.run(
            [
                "podman",
                "run",
                "-d",
                "--name",
                f"{self.name}-gateway",
                "--network",
                self.name,
                "--ip",
                str(self.subnet.broadcast_address - 1),
                "--label",
                f"cloudbench-twin={self.name}",
                VM_IMAGE,
                "sleep",
                "infinity",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        self._start_moto()
        self._write_tf_config()
        from tests.twin.vms import VmWatcher

        self.watcher = VmWatcher(self)
        self.watcher.start()
        (self.state_dir / "env.sh").write_text(
            "".join(f"export {k}='{v}'\n" for k, v in self.env().items())
        )
        log.info("twin %s up: moto %s, VMs on %s", self.name, self.endpoint, self.subnet)

    def _start_moto(self) -> None:
        os.environ["MOTO_AMIS_PATH"] = str(amis_file(self.state_dir / "amis.json"))
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        from tests.twin import calls, console, fidelity

        console.install(self.state_dir / "vms")
        fidelity.install()
        calls.install(self.state_dir / "moto-requests.log")
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request
        self.server = ThreadedMotoServer(ip_address=self.gateway, port=self.port, verbose=False)
        self.server.start()

    def _write_tf_config(self) -> None:
        mirror = find_mirror()
        cache = self.state_dir / "plugin-cache"
        cache.mkdir(exist_ok=True)
        (self.state_dir / "terraform.rc").write_text(
            "provider_installation {\n"
            f'  filesystem_mirror {{\n    path = "{mirror}"\n'
            '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
            '  direct {\n    exclude = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n'
            f'plugin_cache_dir = "{cache}"\n'
        )

    def env(self) -> dict[str, str]:
        """What sends every AWS call of a command (boto3 and Terraform) to the twin."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "twin",
            "AWS_SECRET_ACCESS_KEY": "twin",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",  # never this machine's metadata service
            "TF_CLI_CONFIG_FILE": str(self.state_dir / "terraform.rc"),
            "CHECKPOINT_DISABLE": "1",  # Terraform's version check would leave the machine
            "CLOUDBENCH_AWS_REGION": REGION,
            "CLOUDBENCH_AWS_VPC_CIDR": str(self.vpc),
            "CLOUDBENCH_AWS_PUBLIC_SUBNET_CIDR": str(self.subnet),
            # The twin's machine reaches the VPC's private addresses (as over a VPN).
            "CLOUDBENCH_AWS_CONNECT_PRIVATE": "true",
            "CLOUDBENCH_AWS_ALLOWED_HTTP_CIDRS": str(self.vpc),
            "CLOUDBENCH_AWS_BASTION_SSH_CIDR": f"{self.gateway}/32",
            "CLOUDBENCH_AWS_SSH_PUBLIC_KEY": self.ssh_key,
            "CLOUDBENCH_TWIN_LOGS": str(self.state_dir),
            # The VMs' wheelhouse: CPython 3.11 (the twin's Debian 12) from the VM image's
            # own x86_64 wheels, never PyPI; arm64 types get the same (tests/wheelhouse.py).
            **twin_wheelhouse_env(),
        }

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.server is not None:
            self.server.stop()
        if self.network_made:
            subprocess.run(
                ["podman", "rm", "-f", "-t", "0", f"{self.name}-gateway"],
                capture_output=True,
                check=False,
            )
            subprocess.run(
                ["podman", "network", "rm", "-f", self.name], capture_output=True, check=False
            )


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

"""The master's side of Terraform: the shared meta deployment and module lookup.

Working copies and their layout on disk are `cloudbench.platform.stacks` (nuke uses
them too).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import secrets
import shutil
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.prompt import Confirm

import cloudbench
from cloudbench.master import wheelhouse, wheelpack
from cloudbench.master.client import TLS_FIX
from cloudbench.master.providers.base import ProviderError
from cloudbench.master.wheel import check_same_build, master_wheel
from cloudbench.platform.stacks import (
    SECRETS_FILE,
    AwsSettings,
    Stack,
    saved_secrets,
    settings_file,
)
from cloudbench.platform.state import write_private
from cloudbench.platform.terraform import TerraformError
from cloudbench.platform.tls import client_verify, make_certificate, refusal

logger = logging.getLogger(__name__)

META_OUTPUTS = ("orchestrator_url", "admin_token", "runner_token", "subnet_id", "region")


def module_dir(settings: AwsSettings, name: str) -> Path:
    # src layout: the modules sit beside src/ in a checkout.
    base = settings.infrastructure_dir or Path(cloudbench.__file__).resolve().parents[2] / (
        "infrastructure"
    )
    path = base / name
    if not (path / "variables.tf").is_file():
        raise ProviderError(
            f"Terraform module {name} not found in {base}; set CLOUDBENCH_AWS_INFRASTRUCTURE_DIR"
        )
    return path


def failure(stack: str, log_path: Path, exc: TerraformError) -> ProviderError:
    tail = exc.log_tail or "(empty log)"
    return ProviderError(f"stack {stack}: {exc}; log {log_path}, last lines:\n{tail}")


@dataclass(frozen=True)
class MetaOutputs:
    url: str
    subnet_id: str
    region: str
    admin_token: str = field(repr=False)
    runner_token: str = field(repr=False)
    bucket: str = ""
    # Runners launched in the deployment's subnet reach the orchestrator privately.
    private_url: str = ""
    # ubuntu@<bastion address>: the jump host to reach VMs in the subnet (--debug).
    bastion: str = ""
    # The orchestrator's security group for per-run entries (Azure runners' NAT address).
    runner_nat_group: str = ""
    # The orchestrator's self-signed certificate (PEM) every client pins; empty: none
    # (a deployment made before TLS, which the version check refuses anyway).
    tls_cert: str = ""

    # Availability zone -> public subnet in it (runners go to the zone offering their type).
    zone_subnets: dict[str, str] = field(default_factory=dict)

    def pin_for(self, url: str) -> str | None:
        """The certificate to pin for `url`: the deployment's own at an IP address; none
        (the system's CAs) for a domain name, whose certificate comes from ACME."""
        host = httpx.URL(url).host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
        return self.tls_cert or None


class MetaDeployment:
    """The orchestrator deployment in AWS: applied once, reused by later runs."""

    def __init__(self, settings: AwsSettings, logs_dir: Path, reuse: bool) -> None:
        self.settings, self.reuse = settings, reuse
        root = settings.root()
        log = logs_dir / f"meta-{settings.deployment}.log"
        self.stack = Stack("meta", root / "meta", log, settings, settings.meta_variables())
        self.outputs: MetaOutputs | None = None
        self.failed = False  # a Terraform step failed: the CLI offers to nuke
        self.wheel: Path | None = None
        # The VMs' hash-pinned wheelhouses (their caches), by EC2 architecture.
        self.wheelhouses: dict[str, Path] = {}

    def check(self) -> None:
        if self.reuse:
            if not self.stack.workdir.is_dir():
                raise ProviderError(
                    f"--reuse-orchestrator: no deployment {self.settings.deployment!r} in "
                    f"{self.stack.workdir}; run once without it to deploy"
                )
        else:
            missing = self.settings.missing()
            if missing:
                raise ProviderError(
                    "AWS settings missing: "
                    + ", ".join(missing)
                    + f" (set them in the environment or in {settings_file()})"
                )
            module_dir(self.settings, "meta")
            self.prepare_wheelhouses()  # the orchestrator VM installs from it
        self.wheel = master_wheel(self.settings)

    def deployed(self) -> bool:
        """Whether the meta stack has been applied (its state holds resources)."""
        try:
            state = json.loads((self.stack.workdir / "terraform.tfstate").read_text())
        except (OSError, ValueError):
            return False
        return bool(isinstance(state, dict) and state.get("resources"))

    def prepare_wheelhouses(self) -> None:
        """The VMs' wheelhouses, downloaded now unless cached (before anything is applied,
        so a failure is one line and costs nothing)."""
        if not self.wheelhouses:
            self.wheelhouses = wheelhouse.prepare(self.settings)

    def ship(self, dest: Path, runner: bool = False) -> list[str]:
        """This master's wheel and its pinned dependencies (`runner`: only the runner's) as
        `wheelhouse-<arch>.tar` in `dest`, one per architecture; the architectures."""
        self.prepare_wheelhouses()
        self.wheel = self.wheel or master_wheel(self.settings)
        for old in dest.glob("wheelhouse-*.tar"):
            old.unlink()
        return wheelpack.ship(self.settings, self.wheelhouses, self.wheel, dest, runner)

    def connect(self) -> MetaOutputs:
        """Apply (unless reusing), read the outputs, wait until the orchestrator answers."""
        try:
            if not self.reuse:
                self._identity()
                self.stack.apply()
            raw = self.stack.terraform().output()
        except TerraformError as exc:
            self.failed = True
            raise failure("meta", self.stack.log_path, exc) from None
        self.outputs = _meta_outputs(raw, self.stack.workdir)
        url = self.outputs.url
        if self.settings.connect_private and self.outputs.private_url:
            url = self.outputs.private_url
            self.outputs = dataclasses.replace(self.outputs, url=url)
        cert = self.outputs.pin_for(url)
        wait_up(url, self.settings.orchestrator_wait, cert)
        check_same_build(url, self.wheel or master_wheel(self.settings), cert)
        return self.outputs

    def _identity(self) -> None:
        """Suffix and secrets: chosen once per deployment, the same on every later apply;
        the wheel: this master's, copied beside the state so a later destroy finds it."""
        workdir = self.stack.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        saved = _saved_vars(workdir)
        chosen = saved_secrets(workdir)
        if not chosen:
            chosen = {n: _secret(40) for n in ("admin_token", "runner_token", "postgres_password")}
        if not chosen.get("tls_key"):
            # The orchestrator's HTTPS identity: its key reaches it only through SSM.
            chosen["tls_cert"], chosen["tls_key"] = make_certificate()
        write_private(workdir / SECRETS_FILE, json.dumps(chosen))
        suffix = str(saved.get("suffix") or _secret(8).lower())
        assert self.wheel is not None
        dist = workdir / "dist"
        dist.mkdir(exist_ok=True)
        for old in dist.glob("*.whl"):
            old.unlink()
        shutil.copy2(self.wheel, dist / self.wheel.name)
        arches = self.ship(dist)
        self.stack.variables.update(
            suffix=suffix, orchestrator_wheel=self.wheel.name, wheelhouse_arches=arches
        )
        self.stack.prepare(module_dir(self.settings, "meta"))  # vars.json with them
        self.stack.variables.update(chosen)


def _secret(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _saved_vars(workdir: Path) -> dict[str, Any]:
    try:
        data = json.loads((workdir / "vars.json").read_text())
    except (OSError, ValueError):
        return {}
    return dict(data) if isinstance(data, dict) else {}


def _meta_outputs(raw: dict[str, Any], where: Path) -> MetaOutputs:
    missing = [name for name in META_OUTPUTS if not raw.get(name)]
    if missing:
        raise ProviderError(f"meta deployment in {where} has no output {', '.join(missing)}")
    return MetaOutputs(
        url=str(raw["orchestrator_url"]).rstrip("/"),
        subnet_id=str(raw["subnet_id"]),
        region=str(raw["region"]),
        admin_token=str(raw["admin_token"]),
        runner_token=str(raw["runner_token"]),
        bucket=str(raw.get("bucket") or ""),
        private_url=str(raw.get("orchestrator_private_url") or "").rstrip("/"),
        bastion=_jump_host(str(raw.get("bastion_ssh_command") or "")),
        runner_nat_group=str(raw.get("runner_nat_security_group_id") or ""),
        tls_cert=str(raw.get("orchestrator_tls_certificate") or ""),
        zone_subnets={str(k): str(v) for k, v in (raw.get("zone_subnets") or {}).items()},
    )


def _jump_host(command: str) -> str:
    """`ssh -J ubuntu@1.2.3.4 ubuntu@10.0.1.10` → `ubuntu@1.2.3.4` (empty when absent)."""
    parts = command.split()
    return parts[parts.index("-J") + 1] if "-J" in parts[:-1] else ""


def wait_up(url: str, timeout: float, cert_pem: str | None = None) -> None:
    """A fresh instance needs minutes to install the orchestrator and start it; a
    certificate other than the pinned one ends the wait at once."""
    deadline = time.monotonic() + timeout
    logged = False
    while True:
        try:
            with httpx.Client(verify=client_verify(cert_pem), timeout=5) as http:
                if http.get(f"{url}/up").status_code == 200:
                    return
        except httpx.HTTPError as exc:
            line = refusal(exc, url, TLS_FIX)
            if line is not None:
                raise ProviderError(line) from None
        if time.monotonic() > deadline:
            raise ProviderError(f"orchestrator {url} did not answer within {timeout:.0f}s")
        if not logged:
            logger.info("waiting for the orchestrator at %s", url)
            logged = True
        time.sleep(2.0)


def offer_nuke(
    console: Console, yes: bool, run_id: int | None, region: str, clouds: list[str]
) -> None:
    """After a Terraform failure: run `cloudbench nuke` (--yes / prompt) or print it."""
    args = ["nuke"]
    for cloud in clouds or ["aws"]:
        args += ["--provider", cloud]
    args += ["--region", region]
    if run_id is not None:
        args += ["--run-id", str(run_id)]  # only this run's stacks; meta is shared
    shown = "cloudbench " + " ".join(args)
    if not yes and not console.is_terminal:
        console.print(
            f"to remove what Terraform left behind: {shown}", markup=False, soft_wrap=True
        )
        return
    if not yes and not Confirm.ask(f"Run `{shown}` now?", console=console, default=True):
        console.print(f"not removed; later: {shown}", markup=False)
        return
    subprocess.run([sys.executable, "-m", "cloudbench", *args, "--yes"], check=False)

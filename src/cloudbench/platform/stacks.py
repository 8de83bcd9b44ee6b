"""Terraform working copies ("stacks") on disk, shared by `cloudbench run` and `nuke`.

Layout under ``<home>/terraform/<deployment>/``: ``meta/`` (a working copy of
infrastructure/meta whose state persists between runs) and ``runs/<run-id>/<stack>/``
(one working copy per provider stack). Each working copy keeps the non-secret variables
it was applied with in ``vars.json`` so `cloudbench nuke` can destroy it later; secrets
(the runner token) only ever travel as TF_VAR_ environment variables.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from cloudbench.platform.state import cloudbench_home, private_dir, write_private
from cloudbench.platform.terraform import Terraform, TerraformError

logger = logging.getLogger(__name__)

# tls_cert is public, but it lives in secrets.json with its key (one source for both).
SECRET_VARS = frozenset({"runner_token", "admin_token", "postgres_password", "tls_key", "tls_cert"})
# The meta stack's secrets, chosen once by the master, beside its working copy's state
# (which holds them anyway); private like it.
SECRETS_FILE = "secrets.json"
# Destroy evaluates the configuration, so a validated secret needs some value; which one
# does not matter when the resources are only being deleted.
DESTROY_PLACEHOLDER = "destroy-only-placeholder-token"


class AwsSettings(BaseSettings):
    """CLOUDBENCH_AWS_* from the environment or ``<home>/aws.env``."""

    model_config = SettingsConfigDict(env_prefix="CLOUDBENCH_AWS_", extra="ignore")

    region: str = "us-east-1"
    deployment: str = "default"
    allowed_http_cidrs: str = ""  # comma-separated
    bastion_ssh_cidr: str = ""
    ssh_public_key: str = ""
    # Where the VPC and its one subnet go (empty: the meta stack's defaults).
    vpc_cidr: str = ""
    public_subnet_cidr: str = ""
    # The master reaches the VPC's private addresses (VPN, Direct Connect, or it runs in
    # the VPC): it talks to the orchestrator's private URL instead of its public one.
    connect_private: bool = False
    # A DNS name pointing at the orchestrator's elastic IP: Caddy serves it with an ACME
    # certificate (the system's CAs then vouch for it); empty: the pinned self-signed one.
    domain_name: str = ""
    # The wheel this master was installed from; default: built from its checkout.
    wheel: Path | None = None
    # The VMs' CPython (Ubuntu 24.04: 3.12) and EC2 architectures the master ships a
    # hash-pinned wheelhouse for (master/wheelhouse.py).
    vm_python: str = "3.12"
    vm_arches: str = "x86_64,arm64"
    # `uv export --frozen --no-dev --no-emit-project` of this master's version; default:
    # exported from its checkout's uv.lock.
    requirements: Path | None = None
    # Where downloaded wheelhouses are kept (default: <home>/wheelhouses).
    wheelhouse_cache: Path | None = None
    # The master builds the run's benchmark image for its own architecture and ships it
    # (master/providers/image.py); needs a container engine here and --ruby-bench.
    share_image: bool = False
    terraform: str = "terraform"
    terraform_timeout: float | None = None
    infrastructure_dir: Path | None = None
    orchestrator_wait: float = 900.0

    def missing(self) -> list[str]:
        """Required meta inputs that are not set, by environment variable name."""
        names = ["allowed_http_cidrs", "bastion_ssh_cidr", "ssh_public_key"]
        return [f"CLOUDBENCH_AWS_{n.upper()}" for n in names if not getattr(self, n).strip()]

    def meta_variables(self) -> dict[str, Any]:
        variables: dict[str, Any] = {
            "region": self.region,
            "allowed_http_cidrs": [c.strip() for c in self.allowed_http_cidrs.split(",") if c],
            "bastion_ssh_cidr": self.bastion_ssh_cidr,
            "ssh_public_key": self.ssh_public_key,
        }
        for name in ("vpc_cidr", "public_subnet_cidr", "domain_name"):
            if getattr(self, name):
                variables[name] = getattr(self, name)
        return variables

    def root(self) -> Path:
        return cloudbench_home() / "terraform" / self.deployment


def settings_file() -> Path:
    return cloudbench_home() / "aws.env"


def load_settings() -> AwsSettings:
    return AwsSettings(_env_file=settings_file())


@dataclass
class Stack:
    """One Terraform working copy and the variables it is applied/destroyed with."""

    name: str
    workdir: Path
    log_path: Path
    settings: AwsSettings
    variables: dict[str, Any] = field(default_factory=dict)

    def prepare(self, module: Path) -> None:
        # Refresh the .tf files on every use; state and .terraform/ stay in place.
        # copytree copies what a symlink points to: terraform only ever sees files
        # inside the working copy (the master adds its wheel and ruby-bench there).
        skip = shutil.ignore_patterns(".terraform", "*.tfstate*", "vars.json", SECRETS_FILE)
        # State holds every token and password in plain text: the copy is 0700 (and the
        # Terraform wrapper keeps the state files 0600).
        private_dir(self.workdir)
        shutil.copytree(module, self.workdir, ignore=skip, dirs_exist_ok=True)
        self.workdir.chmod(0o700)
        public = {k: v for k, v in self.variables.items() if k not in SECRET_VARS}
        write_private(self.workdir / "vars.json", json.dumps(public, indent=2))

    def terraform(self) -> Terraform:
        s = self.settings
        env = dict(os.environ)
        # One provider copy for every working copy (each run's stacks, meta, nuke's).
        if not env.get("TF_PLUGIN_CACHE_DIR"):
            env["TF_PLUGIN_CACHE_DIR"] = str(plugin_cache())
        return Terraform(
            self.workdir, self.log_path, binary=s.terraform, env=env, timeout=s.terraform_timeout
        )

    def apply(self, targets: Sequence[str] = ()) -> None:
        tf = self.terraform()
        tf.init()
        tf.apply(self.variables, targets)

    def destroy(self) -> None:
        tf = self.terraform()
        tf.init()
        tf.destroy(self.variables)


def plugin_cache() -> Path:
    path = cloudbench_home() / "terraform" / "plugin-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def saved_secrets(workdir: Path) -> dict[str, str]:
    try:
        data = json.loads((workdir / SECRETS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def recorded_stacks(settings: AwsSettings, run_id: int | None) -> list[Stack]:
    """Working copies left on disk: provider stacks first, then meta (all runs only)."""
    root, logs = settings.root(), cloudbench_home() / "logs"
    runs = sorted((root / "runs").glob("*")) if (root / "runs").is_dir() else []
    dirs = [d for run in runs if run_id is None or run.name == str(run_id) for d in run.iterdir()]
    if run_id is None and (root / "meta").is_dir():
        dirs.append(root / "meta")
    return [
        Stack(d.name, d, logs / f"nuke-{d.parent.name}-{d.name}.log", settings, _saved(d))
        for d in dirs
        if d.is_dir()
    ]


def _saved(workdir: Path) -> dict[str, Any]:
    try:
        data = json.loads((workdir / "vars.json").read_text())
    except (OSError, ValueError):
        return {}
    return dict(data) if isinstance(data, dict) else {}


def destroy_recorded(settings: AwsSettings, stacks: list[Stack]) -> list[str]:
    """Destroy each stack in order, carrying on past failures; returns what failed."""
    token = _runner_token(settings)
    failed = []
    for stack in stacks:
        if "runner_token" in _required(stack.workdir):
            stack.variables["runner_token"] = token
        stack.variables.update(saved_secrets(stack.workdir))
        try:
            stack.destroy()
        except TerraformError as exc:
            logger.warning("destroy of %s failed: %s", stack.workdir, exc)
            failed.append(f"terraform stack {stack.workdir}: {exc} (log {stack.log_path})")
            continue
        # Its state is empty now; a leftover copy would only clutter the next listing.
        shutil.rmtree(stack.workdir, ignore_errors=True)
        _remove_if_empty(stack.workdir.parent)
    return failed


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _required(workdir: Path) -> str:
    try:
        return (workdir / "variables.tf").read_text()
    except OSError:
        return ""


def _runner_token(settings: AwsSettings) -> str:
    meta = settings.root() / "meta"
    if not meta.is_dir():
        return DESTROY_PLACEHOLDER
    try:
        tf = Stack("meta", meta, cloudbench_home() / "logs" / "nuke-meta.log", settings)
        return str(tf.terraform().output().get("runner_token") or DESTROY_PLACEHOLDER)
    except (TerraformError, ValueError):
        return DESTROY_PLACEHOLDER

"""A hash-pinned wheelhouse: what the orchestrator and runner VMs install, offline.

The master exports its locked dependencies (`uv export --frozen --no-dev`, from uv.lock,
with every file's sha256), keeps the entries whose markers hold on the VM (CPython X.Y on
Linux, one architecture; pip would judge them by this machine's Python instead), and
downloads their wheels once with `pip download --only-binary=:all:` for that platform,
checking the hashes. The cache is ``<home>/wheelhouses/<lock hash>-cp312-x86_64/``. Each run
packs the cache and this master's own wheel into one tar per architecture, with a
``requirements.txt`` of exact versions and hashes; the VM installs it with
``pip install --no-index --require-hashes --no-deps``: nothing is built or resolved on the
VM. What each VM gets, and the packing: master/wheelpack.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, Marker

import cloudbench
from cloudbench.master.providers.base import ProviderError
from cloudbench.platform.stacks import AwsSettings
from cloudbench.platform.state import cloudbench_home

logger = logging.getLogger(__name__)

# EC2's architecture names (the stacks' `local.arch`) → the wheel platform's machine.
MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}
# Debian 12 (the twin's VMs) has glibc 2.36, Ubuntu 24.04 2.39: wheels up to 2.36 run on both.
GLIBC_NEWEST = 36
GLIBC_OLDEST = 17
REQUIREMENTS = "requirements.txt"
TARGET_FILE = "TARGET"  # "3.12 x86_64": the user-data refuses a VM whose Python differs


@dataclass(frozen=True)
class Target:
    python: str  # "3.12"
    arch: str  # EC2's name: "x86_64" or "arm64"

    @property
    def name(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.arch}"

    def environment(self) -> dict[str, str]:
        """PEP 508 marker values on the VM."""
        return {
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "platform_machine": MACHINES[self.arch],
        }

    def pip_options(self) -> list[str]:
        machine = MACHINES[self.arch]
        platforms = [
            f"manylinux_2_{n}_{machine}" for n in range(GLIBC_NEWEST, GLIBC_OLDEST - 1, -1)
        ]
        platforms += [f"manylinux2014_{machine}"]
        abi = self.name.split("-")[0]
        options = ["--python-version", self.python, "--implementation", "cp", "--abi", abi]
        options += ["--abi", "abi3", "--abi", "none"]
        for platform in platforms:
            options += ["--platform", platform]
        return options


def targets(settings: AwsSettings) -> list[Target]:
    """CLOUDBENCH_AWS_VM_PYTHON x CLOUDBENCH_AWS_VM_ARCHES, checked."""
    python = settings.vm_python.strip()
    parts = python.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or parts[0] != "3":
        raise ProviderError(
            f"CLOUDBENCH_AWS_VM_PYTHON={python!r}: give the VMs' CPython as 3.X "
            "(3.12 on Ubuntu 24.04, the default)"
        )
    arches = [a.strip() for a in settings.vm_arches.split(",") if a.strip()]
    wrong = [a for a in arches if a not in MACHINES]
    if wrong or not arches:
        raise ProviderError(
            f"CLOUDBENCH_AWS_VM_ARCHES={settings.vm_arches!r}: a comma-separated list of "
            f"{' and '.join(MACHINES)} (EC2's names)"
        )
    return [Target(python, arch) for arch in dict.fromkeys(arches)]


def lock_requirements(settings: AwsSettings) -> str:
    """CLOUDBENCH_AWS_REQUIREMENTS, else `uv export` of this master's checkout's uv.lock."""
    if settings.requirements is not None:
        path = settings.requirements.expanduser()
        try:
            return path.read_text()
        except OSError as exc:
            raise ProviderError(f"CLOUDBENCH_AWS_REQUIREMENTS={path}: {exc.strerror}") from None
    checkout = Path(cloudbench.__file__).resolve().parents[2]
    uv = shutil.which("uv")
    if not (checkout / "uv.lock").is_file() or uv is None:
        raise ProviderError(
            "cannot export this master's locked dependencies (needs its checkout's uv.lock "
            "and `uv` on PATH): set CLOUDBENCH_AWS_REQUIREMENTS to the output of `uv export "
            "--frozen --no-dev --no-emit-project` for the version this master runs"
        )
    command = [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--quiet"]
    result = subprocess.run(
        command, cwd=checkout, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise ProviderError(f"uv export in {checkout} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def pinned(requirements: str, target: Target) -> list[str]:
    """One `name==version --hash=…` line per entry whose markers hold on `target`."""
    entries: list[str] = []
    current = ""
    for raw in requirements.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        current += " " + line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            entries.append(current.strip())
            current = ""
    if current.strip():
        entries.append(current.strip())
    lines = []
    for entry in entries:
        head, _, tail = entry.partition(" --hash=")
        spec, _, marker = head.partition(";")
        hashes = ["--hash=" + h.strip() for h in tail.split("--hash=") if h.strip()]
        if "==" not in spec or not hashes:
            raise ProviderError(
                f"locked requirements: {spec.strip()!r} has no exact version and hash"
            )
        try:
            if marker.strip() and not Marker(marker.strip()).evaluate(target.environment()):
                continue
        except InvalidMarker as exc:
            raise ProviderError(f"locked requirements: {exc}") from None
        lines.append(" ".join([spec.strip(), *hashes]))
    return lines


def _pip() -> list[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    found = shutil.which("pip3") or shutil.which("pip")
    if found is None:
        raise ProviderError("building the VMs' wheelhouse needs pip (`pip3` on PATH)")
    return [found]


def cached(settings: AwsSettings, requirements: str, target: Target) -> Path:
    """The target's dependency wheels and their requirements.txt, downloaded once."""
    lock = hashlib.sha256(requirements.encode()).hexdigest()[:16]
    root = (settings.wheelhouse_cache or cloudbench_home() / "wheelhouses").expanduser()
    home = root / f"{lock}-{target.name}"
    if (home / REQUIREMENTS).is_file():
        return home
    root.mkdir(parents=True, exist_ok=True)
    lines = pinned(requirements, target)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        wanted = Path(tmp) / REQUIREMENTS
        wanted.write_text("\n".join(lines) + "\n")
        command = [*_pip(), "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        command += ["--only-binary=:all:", "--require-hashes", *target.pip_options()]
        command += ["--dest", str(Path(tmp) / "wheels"), "-r", str(wanted)]
        logger.info("downloading %d wheels for %s into %s", len(lines), target.name, home)
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip()[-800:]
            raise ProviderError(f"pip download of the wheelhouse for {target.name} failed: {tail}")
        shutil.move(wanted, Path(tmp) / "wheels" / REQUIREMENTS)
        try:
            (Path(tmp) / "wheels").rename(home)
        except OSError:
            if not (home / REQUIREMENTS).is_file():  # not another master's, just now
                raise
    return home


def prepare(settings: AwsSettings) -> dict[str, Path]:
    """Every target's cache (downloading what is missing), by EC2 architecture."""
    requirements = lock_requirements(settings)
    return {t.arch: cached(settings, requirements, t) for t in targets(settings)}

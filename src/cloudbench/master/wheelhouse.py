"""A hash-pinned wheelhouse: what the orchestrator and runner VMs install, offline.

The master exports its locked dependencies (`uv export --frozen --no-dev`, from uv.lock,
with every file's sha256), keeps the entries whose markers hold on the VM (CPython X.Y on
Linux, one architecture; pip would judge them by this machine's Python instead), and
downloads their wheels once with `pip download --only-binary=:all:` for that platform,
checking the hashes. The cache is ``<home>/wheelhouses/<lock hash>-cp312-x86_64/``. Each run
packs the cache and this master's own wheel into one tar per architecture, with a
``requirements.txt`` of exact versions and hashes; the VM installs it with
``pip install --no-index --require-hashes --no-deps``: nothing is built or resolved on the
VM. The orchestrator VM gets every locked package (its dashboard runs the report); runner
VMs only what the runner imports (RUNNER_ROOTS and what their wheels require): ~20 of
~100 MB, unpacked on every VM at boot.
"""

from __future__ import annotations

import email.parser
import hashlib
import importlib.util
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

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
# What `cloudbench runner` imports (tests/master/test_wheelhouse.py checks that these and
# their requirements cover every module the runner's package loads); the orchestrator's,
# master's and report's stacks (fastapi, boto3, scipy, …) stay off runner VMs.
RUNNER_ROOTS = (
    "docker",
    "httpx",
    "psutil",
    "pydantic",
    "pydantic-settings",
    "pyyaml",
    "rich",
    "tenacity",
    "typer",
    "zlib-ng",
)


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


def _requires(wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist (its METADATA, read from the zip)."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = email.parser.BytesParser().parsebytes(archive.read(name), headersonly=True)
    return [Requirement(line) for line in meta.get_all("Requires-Dist") or []]


def closure(cache: Path, target: Target, roots: tuple[str, ...]) -> set[str]:
    """`roots` and every package their wheels in `cache` require on `target` (markers and
    requested extras judged for the VM), as canonical names."""
    wheels = {parse_wheel_filename(p.name)[0]: p for p in cache.glob("*.whl")}
    seen: set[tuple[str, str]] = set()  # (package, one of its extras or "")
    todo = [(canonicalize_name(r), "") for r in roots]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        if name not in wheels:
            raise ProviderError(f"the wheelhouse {cache} has no wheel for {name}")
        environment = {**target.environment(), "extra": extra}
        for req in _requires(wheels[name]):
            if req.marker is None or req.marker.evaluate(environment):
                dep = canonicalize_name(req.name)
                todo += [(dep, ""), *((dep, e) for e in req.extras)]
    return {name for name, _ in seen}


PACKED_KEPT = 4  # packed tars kept per cache (one per master build and role, newest first)


def pack(
    cache: Path, wheel: Path, target: Target, dest: Path, keep: set[str] | None = None
) -> Path:
    """One tar (wheels are compressed already) of the cache (only the packages in `keep`,
    when given), `wheel` and the pins, at `dest`. Packed once per content under the cache
    and linked to `dest`: every run ships the same ~100 MB for the orchestrator."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    version = cloudbench.__version__
    pins = [
        line
        for line in (cache / REQUIREMENTS).read_text().splitlines()
        if line.strip() and (keep is None or canonicalize_name(line.split("==")[0]) in keep)
    ]
    pins.append(f"cloudbench=={version} --hash=sha256:{digest}")
    text = "\n".join(pins) + "\n"
    files = [p for p in sorted(cache.glob("*.whl")) if p.is_file()]
    if keep is not None:
        files = [p for p in files if parse_wheel_filename(p.name)[0] in keep]
    key = hashlib.sha256(
        "\0".join([text, _target_line(target).decode(), *map(str, files)]).encode()
    )
    packed = cache / "packed" / f"{key.hexdigest()[:24]}.tar"
    if packed.is_file():
        os.utime(packed)  # the newest are kept
    else:
        _write(packed, text, target, [*files, wheel])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(packed, tmp)
    except OSError:  # another filesystem
        shutil.copyfile(packed, tmp)
    tmp.replace(dest)
    return dest


def _write(packed: Path, text: str, target: Target, files: list[Path]) -> None:
    packed.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.NamedTemporaryFile(dir=packed.parent, suffix=".part", delete=False) as out,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, data in ((REQUIREMENTS, text.encode()), (TARGET_FILE, _target_line(target))):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for path in files:
            tar.add(path, arcname=path.name, filter=_plain)
    Path(out.name).chmod(0o644)
    Path(out.name).replace(packed)  # whole, or not there (masters may pack side by side)
    older = sorted(packed.parent.glob("*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in older[PACKED_KEPT:]:
        old.unlink(missing_ok=True)


def _target_line(target: Target) -> bytes:
    return f"{target.python} {target.arch}\n".encode()


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = 0o644
    return info


def runner_versions(settings: AwsSettings, caches: dict[str, Path]) -> dict[str, str]:
    """Per EC2 architecture: what the runner imports, as `name==version` lines of the lock
    (no hashes: Azure's custom data holds 64 KB, every platform's hashes ~40 KB)."""
    python = targets(settings)[0].python
    out = {}
    for arch, cache in caches.items():
        keep = closure(cache, Target(python, arch), RUNNER_ROOTS)
        lines = (cache / REQUIREMENTS).read_text().splitlines()
        pins = [line.split(" ", 1)[0] for line in lines if line.strip()]
        out[arch] = "\n".join(p for p in pins if canonicalize_name(p.split("==")[0]) in keep)
    return out


def ship(
    settings: AwsSettings, caches: dict[str, Path], wheel: Path, dest: Path, runner: bool = False
) -> list[str]:
    """`wheelhouse-<arch>.tar` in `dest` for every cached target (`runner`: only what the
    runner needs); their architectures."""
    python = targets(settings)[0].python
    for arch, cache in caches.items():
        target = Target(python, arch)
        keep = closure(cache, target, RUNNER_ROOTS) if runner else None
        pack(cache, wheel, target, dest / f"wheelhouse-{arch}.tar", keep)
    return sorted(caches)

"""What each VM installs from the wheelhouse (master/wheelhouse.py), packed.

The orchestrator VM gets every locked package (its dashboard runs the report); runner VMs
only what the runner imports (RUNNER_ROOTS and what their wheels require, markers judged
for the VM): 28 packages, ~7 of ~100 MB, unpacked on every VM at boot. A tar is packed
once per content under the cache and linked into each stack; Azure runners get the same
set as `name==version` lines (their custom data holds no tar).
"""

from __future__ import annotations

import email.parser
import functools
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

import cloudbench
from cloudbench.master.providers.base import ProviderError
from cloudbench.master.wheelhouse import REQUIREMENTS, TARGET_FILE, Target, targets
from cloudbench.platform.stacks import AwsSettings

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


def _requires(wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist (its METADATA, read from the zip)."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = email.parser.BytesParser().parsebytes(archive.read(name), headersonly=True)
    return [Requirement(line) for line in meta.get_all("Requires-Dist") or []]


@functools.cache  # a run asks twice (the runner's tar, Azure's pins); a cache's wheels stay
def closure(cache: Path, target: Target, roots: tuple[str, ...]) -> frozenset[str]:
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
    return frozenset(name for name, _ in seen)


PACKED_KEPT = 4  # packed tars kept per cache (one per master build and role, newest first)


def pack(
    cache: Path, wheel: Path, target: Target, dest: Path, keep: frozenset[str] | None = None
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

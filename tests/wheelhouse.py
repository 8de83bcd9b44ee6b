"""Where tests get the VMs' wheels without PyPI: the twin VM image's /opt/wheelhouse.

scripts/standin-vm-image.sh downloads cloudbench's locked dependencies (uv.lock, CPython
3.11, x86_64: the image's Debian 12) from PyPI once, when the image is built. Tests copy
that folder out once per image id and point the master's `pip download` at it with pip's
own settings (PIP_NO_INDEX, PIP_FIND_LINKS: what a user with a local mirror would set), so
the master's real download path runs and no test reaches PyPI. The wheelhouse target is
then CPython 3.11 on x86_64, the twin's VMs.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.containers import twin_vm_image

VM_IMAGE = os.environ.get("CLOUDBENCH_TWIN_VM_IMAGE", "localhost/cloudbench-twin-vm:bookworm")
ROOT = Path(f"/tmp/cloudbench-test-wheelhouse-{os.getuid()}")


def _podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"podman {' '.join(args)}: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


@functools.cache  # one `podman image inspect` per test process, not one per test
def image_wheels() -> Path:
    """A copy of the twin VM image's /opt/wheelhouse (made once per image id)."""
    if "CLOUDBENCH_TWIN_VM_IMAGE" not in os.environ:
        twin_vm_image()
    found = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", VM_IMAGE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if found.returncode != 0:
        pytest.fail(f"no {VM_IMAGE}: build it with scripts/standin-vm-image.sh")
    ROOT.mkdir(exist_ok=True)
    dest = ROOT / found.stdout.strip()[:16]
    with (ROOT / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not dest.is_dir():
            part = ROOT / f"{dest.name}.part"
            shutil.rmtree(part, ignore_errors=True)
            container = _podman("create", VM_IMAGE, "true")
            try:
                _podman("cp", f"{container}:/opt/wheelhouse", str(part))
            finally:
                _podman("rm", "-f", container)
            part.rename(dest)
    return dest


def wheelhouse_env(cache: Path | None = None) -> dict[str, str]:
    """The master's settings for a wheelhouse built from the image's wheels (3.11, x86_64);
    `cache`: where the master keeps it (default: a folder shared by the test session)."""
    wheels = image_wheels()
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "CLOUDBENCH_AWS_VM_PYTHON": "3.11",
        "CLOUDBENCH_AWS_VM_ARCHES": "x86_64",
        "CLOUDBENCH_AWS_WHEELHOUSE_CACHE": str(cache or wheels.with_name(f"{wheels.name}-cache")),
    }


def twin_wheelhouse_env() -> dict[str, str]:
    """The twin's: its arm64 instance types boot the same x86_64 VM image as the others
    (no arm64 machine here), so the arm64 target's cache is a copy of the x86_64 one — a
    stand-in the master then finds cached. The real aarch64 download is pip's own
    `--platform manylinux_*_aarch64` path, which needs PyPI and is not run by tests."""
    env = wheelhouse_env()
    cache = Path(env["CLOUDBENCH_AWS_WHEELHOUSE_CACHE"])
    from cloudbench.master import wheelhouse
    from cloudbench.platform.stacks import AwsSettings

    settings = AwsSettings(vm_python="3.11", vm_arches="x86_64", wheelhouse_cache=cache)
    saved = {k: os.environ.get(k) for k in ("PIP_NO_INDEX", "PIP_FIND_LINKS")}
    with (ROOT / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.environ.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=env["PIP_FIND_LINKS"])
        try:
            x86 = wheelhouse.prepare(settings)["x86_64"]
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        arm = x86.with_name(x86.name.removesuffix("-x86_64") + "-arm64")
        if not arm.is_dir():
            shutil.copytree(x86, arm.with_name(arm.name + ".part"), dirs_exist_ok=True)
            arm.with_name(arm.name + ".part").rename(arm)
    return {**env, "CLOUDBENCH_AWS_VM_ARCHES": "x86_64,arm64"}

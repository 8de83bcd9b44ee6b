"""The VMs' hash-pinned wheelhouse (master/wheelhouse.py): built by the master's real
`pip download` from the twin VM image's wheels (tests/wheelhouse.py says why: no PyPI at
test time), packed with a real wheel of this checkout, and installed offline in a real
container of the twin's VM image (Debian 12, CPython 3.11) exactly as the user-data does."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

import cloudbench
from cloudbench.master import wheelhouse, wheelpack
from cloudbench.master.providers.base import ProviderError
from cloudbench.platform.stacks import AwsSettings
from tests.wheelhouse import VM_IMAGE, wheelhouse_env

pytestmark = [pytest.mark.slow]

# The user-data's install (infrastructure/providers/aws/templates/runner-user-data.sh.tftpl):
# /etc/pip.conf of the image (its own wheelhouse) is switched off, so only the tar counts.
# Then every module of the runner's package is imported, and the runner's CLI starts.
INSTALL = """set -eu
mkdir -p /wh && tar -xf /in/wheelhouse-x86_64.tar -C /wh
python3 -m venv /venv
PIP_CONFIG_FILE=/dev/null /venv/bin/pip install --quiet --disable-pip-version-check \\
  --no-compile --no-index --no-deps --require-hashes --find-links /wh -r /wh/requirements.txt
/venv/bin/python -c "$CHECK"
/venv/bin/cloudbench runner --help >/dev/null
"""
CHECK = """
import importlib, importlib.util, pkgutil
import cloudbench, cloudbench.runner
for found in pkgutil.walk_packages(cloudbench.runner.__path__, "cloudbench.runner."):
    if not found.name.endswith("__main__"):  # __main__ reads the runner's settings
        importlib.import_module(found.name)
present = [n for n in ("scipy", "numpy", "fastapi", "boto3") if importlib.util.find_spec(n)]
print("present:", present)
print(cloudbench.__version__)
"""


def _settings(monkeypatch: pytest.MonkeyPatch, cache: Path, **extra: str) -> AwsSettings:
    for name, value in {**wheelhouse_env(cache), **extra}.items():
        monkeypatch.setenv(name, value)
    return AwsSettings()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real wheel of this checkout, as the master builds its own."""
    out = tmp_path_factory.mktemp("wheel")
    checkout = Path(cloudbench.__file__).resolve().parents[2]
    subprocess.run(
        ["uv", "build", "--wheel", "--quiet", "--out-dir", str(out), str(checkout)],
        check=True,
        timeout=600,
    )
    return next(out.glob("cloudbench-*.whl"))


def _in_vm(tar: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            f"{tar.parent}:/in:ro",
            "-e",
            f"CHECK={CHECK}",
            VM_IMAGE,
            "bash",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _contents(tar: Path) -> tuple[set[str], list[str]]:
    """The tar's member names and its requirements.txt lines."""
    with tarfile.open(tar) as archive:
        names = set(archive.getnames())
        pins = archive.extractfile("requirements.txt").read().decode()  # type: ignore[union-attr]
    return names, pins.splitlines()


def test_markers_are_judged_for_the_vm_not_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    text = wheelhouse.lock_requirements(AwsSettings())
    old = wheelhouse.pinned(text, wheelhouse.Target("3.11", "x86_64"))
    new = wheelhouse.pinned(text, wheelhouse.Target("3.12", "arm64"))
    names = {line.split("==")[0] for line in old}
    assert "pywin32" not in names and "colorama" not in names  # win32 only
    numpy_old = [line for line in old if line.startswith("numpy==")]
    numpy_new = [line for line in new if line.startswith("numpy==")]
    assert len(numpy_old) == len(numpy_new) == 1 and numpy_old != numpy_new
    assert all(";" not in line and " --hash=sha256:" in line for line in old + new)


def test_bad_targets_are_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match=r"CLOUDBENCH_AWS_VM_PYTHON='3': .*3\.X"):
        wheelhouse.targets(_settings(monkeypatch, tmp_path, CLOUDBENCH_AWS_VM_PYTHON="3"))
    with pytest.raises(ProviderError, match="CLOUDBENCH_AWS_VM_ARCHES='amd64'"):
        wheelhouse.targets(_settings(monkeypatch, tmp_path, CLOUDBENCH_AWS_VM_ARCHES="amd64"))


def test_built_once_then_installed_offline_with_every_hash_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wheel: Path
) -> None:
    settings = _settings(monkeypatch, tmp_path / "cache")
    caches = wheelhouse.prepare(settings)
    assert list(caches) == ["x86_64"] and caches["x86_64"].name.endswith("-cp311-x86_64")
    # Cached: no source of wheels at all the second time.
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    assert wheelhouse.prepare(AwsSettings()) == caches
    # Another Python is another target: it needs a download, which now has no source.
    with pytest.raises(ProviderError, match="pip download of the wheelhouse for cp312-x86_64"):
        wheelhouse.prepare(AwsSettings(vm_python="3.12"))

    # The orchestrator's: every locked package (its dashboard runs the report).
    out = tmp_path / "ship"
    assert wheelpack.ship(settings, caches, wheel, out) == ["x86_64"]
    names, pins = _contents(out / "wheelhouse-x86_64.tar")
    assert wheel.name in names and "TARGET" in names
    assert {"scipy", "fastapi", "boto3", "docker"} <= {pin.split("==")[0] for pin in pins}
    assert f"cloudbench=={cloudbench.__version__}" in [pin.split(" ")[0] for pin in pins]
    # The runners': only what the runner imports, and it installs and starts with it.
    out = tmp_path / "runner"
    assert wheelpack.ship(settings, caches, wheel, out, runner=True) == ["x86_64"]
    tar = out / "wheelhouse-x86_64.tar"
    names, pins = _contents(tar)
    kept = {pin.split("==")[0] for pin in pins}
    assert {"docker", "httpx", "typer", "cloudbench"} <= kept
    assert not {"scipy", "numpy", "fastapi", "boto3", "sqlalchemy"} & kept
    assert len([n for n in names if n.endswith(".whl")]) == len(pins)
    done = _in_vm(tar, INSTALL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["present: []", cloudbench.__version__]
    # The next run ships the very same file, packed once (a link to the cache's copy).
    again = tmp_path / "again"
    wheelpack.ship(settings, caches, wheel, again, runner=True)
    assert (again / tar.name).stat().st_ino == tar.stat().st_ino

    # One changed byte in one wheel: pip refuses the install.
    tampered = INSTALL.replace(
        "python3 -m venv /venv",
        "printf x >>/wh/idna-*.whl\npython3 -m venv /venv",
    )
    done = _in_vm(tar, tampered)
    assert done.returncode != 0
    assert "DO NOT MATCH THE HASHES" in done.stderr

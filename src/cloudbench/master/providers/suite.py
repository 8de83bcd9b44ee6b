"""`--ruby-bench PATH|URL[@ref]` for cloud runners: the master packs the suite once and
ships it (the AWS stack puts it in the deployment's bucket; for Azure VMs, which hold no
AWS credentials, the master stores it with the run at the orchestrator and their custom
data carries its sha256), so VMs never clone it."""

from __future__ import annotations

import logging
import subprocess
import tarfile
import tempfile
from pathlib import Path

from cloudbench.master.client import OrchestratorClient
from cloudbench.master.providers.base import ProviderError
from cloudbench.platform.http import ApiError

logger = logging.getLogger(__name__)


def _is_local(source: str) -> bool:
    return "://" not in source and not source.startswith("git@")


def check(source: str | None) -> None:
    if source and _is_local(source) and not (Path(source) / "run_benchmarks.rb").is_file():
        raise ProviderError(
            f"--ruby-bench {source}: not a ruby-bench checkout (no run_benchmarks.rb)"
        )


def pack(source: str, dest: Path) -> Path:
    """A .tar.gz of the suite (without .git) at `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if _is_local(source):
        _tar(Path(source), dest)
        return dest
    url, _, ref = source.rpartition("@") if "@" in source.split("://", 1)[-1] else (source, "", "")
    with tempfile.TemporaryDirectory() as tmp:
        checkout = Path(tmp) / "ruby-bench"
        _git("clone", "--quiet", url, str(checkout))
        if ref:
            _git("-C", str(checkout), "checkout", "--quiet", ref)
        _tar(checkout, dest)
    return dest


def ship(source: str, dest: Path, api: OrchestratorClient | None, run_id: int) -> str:
    """Pack the suite and store it with the run at the orchestrator; its sha256.

    A resumed run keeps the suite it packed first (`dest` is per run): a new pack would
    get another sha256 (gzip records the time) than VMs already booted were given."""
    if api is None:
        raise ProviderError("--ruby-bench for Azure runners needs the orchestrator's API")
    if not dest.is_file():
        pack(source, dest)
    try:
        stored = api.put_suite(run_id, dest)
    except ApiError as exc:
        raise ProviderError(f"cannot ship --ruby-bench to the orchestrator: {exc}") from None
    logger.info("run %d: ruby-bench shipped to the orchestrator (%d bytes)", run_id, stored.size)
    return stored.sha256


def _git(*args: str) -> None:
    result = subprocess.run(
        ["git", *args], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise ProviderError(f"git {' '.join(args)} failed: {result.stderr.strip()[-300:]}")


def _tar(root: Path, dest: Path) -> None:
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if ".git" in Path(info.name).parts else info

    tmp = dest.with_suffix(".part")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(root, arcname=".", filter=keep)
    tmp.replace(dest)
    logger.info("packed ruby-bench %s into %s", root, dest)

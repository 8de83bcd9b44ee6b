"""The master's own wheel, which the AWS orchestrator installs and serves to runners.

Orchestrator, runners and master then run one build: the master ships the wheel through
the meta stack, and `check_same_build` refuses a deployment serving another one.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx

import cloudbench
from cloudbench.master.providers.base import ProviderError
from cloudbench.platform.stacks import AwsSettings
from cloudbench.platform.state import cloudbench_home
from cloudbench.platform.tls import client_verify

logger = logging.getLogger(__name__)

_LINK = re.compile(r'href="(cloudbench-[^"/]+\.whl)"')


def version_of(name: str) -> str:
    parts = name.split("-")
    return parts[1] if len(parts) > 1 else name


def master_wheel(settings: AwsSettings) -> Path:
    """CLOUDBENCH_AWS_WHEEL, else a wheel built from this master's checkout."""
    mine = cloudbench.__version__
    if settings.wheel is not None:
        wheel = settings.wheel.expanduser()
        if not wheel.is_file() or version_of(wheel.name) != mine:
            raise ProviderError(
                f"CLOUDBENCH_AWS_WHEEL={wheel}: not a cloudbench {mine} wheel (this master's "
                "version); point it at the wheel this master was installed from"
            )
        return wheel
    checkout = Path(cloudbench.__file__).resolve().parents[2]
    if not (checkout / "pyproject.toml").is_file():
        raise ProviderError(
            "cannot find this master's wheel: set CLOUDBENCH_AWS_WHEEL to the "
            f"cloudbench-{mine} wheel it was installed from"
        )
    return _build(checkout)


def _build(checkout: Path) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        raise ProviderError(
            "building this master's wheel needs `uv` on PATH (or set CLOUDBENCH_AWS_WHEEL)"
        )
    out = cloudbench_home() / "wheels"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        result = subprocess.run(
            [uv, "build", "--wheel", "--quiet", "--out-dir", tmp, str(checkout)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        built = sorted(Path(tmp).glob("cloudbench-*.whl"))
        if result.returncode != 0 or not built:
            tail = (result.stderr or result.stdout).strip()[-500:]
            raise ProviderError(f"uv build of {checkout} failed: {tail}")
        wheel = out / built[0].name
        shutil.move(built[0], wheel)
    logger.info("built this master's wheel %s", wheel)
    return wheel


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_same_build(url: str, wheel: Path, cert_pem: str | None = None) -> None:
    """The orchestrator at `url` serves exactly `wheel` at /dist/, or one clear line."""
    try:
        with httpx.Client(verify=client_verify(cert_pem), timeout=30) as http:
            page = http.get(f"{url}/dist/")
            names = _LINK.findall(page.text) if page.status_code == 200 else []
            served = http.get(f"{url}/dist/{names[0]}", timeout=120).content if names else b""
    except httpx.HTTPError as exc:
        raise ProviderError(f"orchestrator {url}: cannot read its wheel at /dist/: {exc}") from None
    theirs = version_of(names[0]) if names else "unknown"
    mine = version_of(wheel.name)
    if not names or hashlib.sha256(served).hexdigest() != sha256(wheel):
        same = " (another build of the same version)" if theirs == mine else ""
        raise ProviderError(
            f"orchestrator {url} runs cloudbench {theirs}, this master is cloudbench {mine}"
            f"{same}: use a master of its version, or `cloudbench nuke --provider aws` and "
            "deploy again"
        )

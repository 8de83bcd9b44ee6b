"""CLOUDBENCH_AWS_SHARE_IMAGE: the run's benchmark image, built once by the master.

The master builds the image its runners would build (`cloudbench benchmark-image`, the
runner's own docker executor in a process of its own: components do not import each
other) with its container engine, for its own architecture, from the suite it ships
(`--ruby-bench`), and saves it as ``benchmark-<sha256>.tar`` beside the stack. The AWS
stack uploads it to the run's bucket (``runs/<run_id>/``; destroyed with the stack, and
`cloudbench nuke` destroys the stack) and runner VMs of that architecture load it,
checking its sha256, instead of building: the same image id on every one of them.
Other architectures build their own. Why the bucket: a registry is one more resource per
deployment to create, secure and remove, and the run's bucket already ships its suite.
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from cloudbench.master.providers.base import ProviderError
from cloudbench.protocol import RunSpec

logger = logging.getLogger(__name__)

ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def check(spec: RunSpec, ruby_bench: str | None) -> None:
    if not ruby_bench:
        raise ProviderError(
            "CLOUDBENCH_AWS_SHARE_IMAGE needs --ruby-bench (the suite the master ships is "
            "the one it builds the image from)"
        )
    if len(spec.rubies) != 1:
        raise ProviderError(
            "CLOUDBENCH_AWS_SHARE_IMAGE: one image holds one Ruby; this run has "
            f"ruby_versions {spec.rubies} (unset it, or use one ruby_version)"
        )
    if platform.machine() not in ARCHES:
        raise ProviderError(
            f"CLOUDBENCH_AWS_SHARE_IMAGE: unknown architecture {platform.machine()}"
        )


def build(spec: RunSpec, suite_tar: Path, dest: Path) -> dict[str, str]:
    """Build and save the image beside the stack; the stack's `benchmark_image` variable."""
    for old in dest.glob("benchmark-*.tar"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "ruby-bench"
        suite.mkdir()
        with tarfile.open(suite_tar) as tar:
            tar.extractall(suite, filter="data")
        command = [
            sys.executable,
            "-m",
            "cloudbench",
            "benchmark-image",
            "--ruby-version",
            spec.rubies[0],
            "--ruby-bench",
            str(suite),
            "--out",
            str(dest),
            "--benchmarks",
            spec.benchmarks.model_dump_json(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-800:]
        raise ProviderError(f"building the run's benchmark image failed: {tail}")
    made = json.loads(done.stdout.strip().splitlines()[-1])
    arch = ARCHES[platform.machine()]
    logger.info(
        "benchmark image for %s built in %ss: %s (%s)",
        arch,
        made["seconds"],
        made["image_tag"],
        made["image_id"],
    )
    return {
        "arch": arch,
        "file": str(made["archive"]),
        "ruby_image_digest": str(made["base_image_digest"] or ""),
        "image_id": str(made["image_id"]),
        "build_seconds": str(made["seconds"]),
    }

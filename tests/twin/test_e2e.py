"""The cloud path end to end, through the AWS twin (scripts/cloud-twin).

Real: Terraform with the real AWS provider, the project's stacks, the master, the
orchestrator VM booting through its user-data (the master's wheel, PostgreSQL, systemd
unit), runner VMs booting through theirs (the wheel from the orchestrator over the twin's
network at a plain-HTTP non-local address, ruby-bench from the bucket), benchmark
containers, presigned uploads to S3, the archive, the download, the report, teardown,
then `cloudbench nuke` with the meta stack still there.

Stand-ins, because they cannot exist here: AWS's APIs (moto's server), the VMs (podman
containers from a Debian image with the packages the user-data installs; both instance
types run on this machine's CPU, so the numbers say nothing about either), the instance
metadata service (tests/twin/imds.py in each VM's namespace), and ruby-bench (the small
tests/fake_ruby_bench). The twin does not enforce security groups.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "fake_ruby_bench"
CONFIG = ROOT / "config" / "twin-aws.json"
RUN_LIMIT = 720  # seconds; then the twin is stopped and the test fails with its logs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_LIMIT + 240)]

STEPS = """
set -u
cloudbench run "$CONFIG" --ruby-bench "$SUITE" --yes; echo "run=$?" >>"$OUT/status"
python -m tests.twin.machines "$CLOUDBENCH_HOME/terraform/default/meta" >"$OUT/machines.json"
python -m tests.twin.inventory >"$OUT/before-nuke.json"
cloudbench nuke --provider aws --yes; echo "nuke=$?" >>"$OUT/status"
python -m tests.twin.inventory >"$OUT/after-nuke.json"
"""


def test_cloud_run_through_the_twin_then_nuke_leaves_nothing(tmp_path: Path) -> None:
    home, out, state = tmp_path / "home", tmp_path / "out", tmp_path / "twin"
    out.mkdir()
    env = {
        **os.environ,
        "CLOUDBENCH_HOME": str(home),
        "OUT": str(out),
        "CONFIG": str(CONFIG),
        "SUITE": str(SUITE),
        "PYTHONPATH": str(ROOT),
    }
    started = time.monotonic()
    command = [str(ROOT / "scripts" / "cloud-twin"), "--state-dir", str(state), "--"]
    proc = subprocess.Popen(
        [*command, "bash", "-c", STEPS],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=RUN_LIMIT)
    except subprocess.TimeoutExpired:
        # Ctrl-C for the twin: the master tears down, the twin removes its VMs.
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=180)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    elapsed = time.monotonic() - started
    sys.stderr.write(f"twin end-to-end: {elapsed:.0f}s\n")
    tail = (result.stdout[-3000:] + result.stderr[-6000:]) + f"\n(twin logs: {state})"
    assert (out / "status").is_file(), tail
    status = dict(line.split("=") for line in (out / "status").read_text().split())
    assert status == {"run": "0", "nuke": "0"}, tail
    assert result.returncode == 0, tail

    # The run's results came back from both types, and the report was built from them.
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    outputs = {p.parent.name.split("-")[0]: p for p in run_dir.glob("*/output.json")}
    assert set(outputs) == {"c7i", "c7g"}, tail
    for path in outputs.values():
        assert {"fib", "nbody"} <= set(json.loads(path.read_text())["raw_data"]["interp"])
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert not summary["excluded"], summary["excluded"]

    # Both runner VMs reported their stages to the orchestrator, up to `finished`.
    machines = json.loads((out / "machines.json").read_text())["machines"]
    stages = {m["alias"]: m["stage"] for m in machines}
    assert stages == {"c7i": "finished", "c7g": "finished"}, machines
    assert all(m["provider"] == "aws" and m["instance_id"].startswith("i-") for m in machines)

    # Each type went to a zone that offers it; the end said what stays up (issue 25).
    said = result.stdout + result.stderr
    assert "aws zone for c7i.large: us-east-1a" in said, tail
    assert "aws zone for c7g.medium: us-east-1a" in said, tail
    # c7i.large 2 + c7g.medium 1 + the meta stack's 2 + 2 vCPUs, against the twin's quota.
    assert "in us-east-1: 0 in use + 7 for this run = 7 of 32: ok" in said, tail
    assert "still up: AWS meta deployment 'default' in us-east-1" in said, tail
    assert "remove it: cloudbench nuke --provider aws --region us-east-1" in said, tail

    # Before the nuke the shared meta deployment was still there; after it, nothing is.
    before = json.loads((out / "before-nuke.json").read_text())
    assert before["vpcs"] and before["buckets"] and before["ssm_parameters"], before
    # A public subnet in each of moto's six us-east-1 zones (meta's zone_subnets).
    assert len(before["subnets"]) == 6, before
    assert len(before["instances"]) == 2, before  # the orchestrator and the bastion
    after = json.loads((out / "after-nuke.json").read_text())
    assert all(not found for found in after.values()), after
    # Every Terraform state is gone with its working copy.
    leftover = list((home / "terraform").glob("**/*.tfstate"))
    assert all(not json.loads(p.read_text()).get("resources") for p in leftover), leftover
    # Four VMs booted through their user-data: orchestrator, bastion and two runners.
    consoles = [p.read_text() for p in state.glob("vms/*/console.log")]
    assert len(consoles) == 4 and all("[twin-vm] booting" in c for c in consoles), consoles
    # The runners' user-data wrote its steps to the serial console (GetConsoleOutput).
    runners = [c for c in consoles if "cloudbench i-" in c]
    assert len(runners) == 2 and all("starting the runner" in c for c in runners), consoles

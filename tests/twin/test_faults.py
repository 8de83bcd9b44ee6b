"""Cloud VMs that fail, through the AWS twin: the master notices each and says why.

One twin session and one meta deployment for three runs (issue 23's "Tests for each"),
each with one instance type under its own alias and one twin fault:

- `--kill-vm killvm:15` with `instances: 2`: one VM is killed 15 s after its runner
  started (the first to start, so the one that claimed the task); EC2 reports it
  terminated, the master hands its task back and the type's other VM completes it.
- `--fail-boot failboot:pip`: the runner cannot be installed (pip fails); the user-data's EXIT
  trap reports `error` with its last lines, the master prints the cause and exits 1.
- `--no-boot noboot`: EC2 keeps the instance `pending`; the run stops at --boot-timeout
  with "never called in" instead of waiting for Terraform's default 10 minutes.

The second and third runs re-apply the same meta: nothing changes (Terraform plans no
change; the orchestrator instance is kept).
Then `cloudbench nuke` leaves nothing. Real and stand-in parts: as in test_e2e.py.
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
RUN_LIMIT = 1200  # seconds; then the twin is stopped and the test fails with its logs

pytestmark = [pytest.mark.slow, pytest.mark.twin_faults, pytest.mark.timeout(RUN_LIMIT + 240)]

STEPS = """
set -u
run() {  # NAME [OPTIONS]: one cloudbench run, its output and exit status kept
  name=$1; shift
  cloudbench run "$OUT/$name.json" --ruby-bench "$SUITE" --yes "$@" >"$OUT/$name.out" 2>&1
  echo "$name=$?" >>"$OUT/status"
  python -m tests.twin.inventory >"$OUT/after-$name.json"
}
run killvm
run failboot --boot-timeout 600
run noboot --boot-timeout 30
cloudbench nuke --provider aws --yes >"$OUT/nuke.out" 2>&1; echo "nuke=$?" >>"$OUT/status"
python -m tests.twin.inventory >"$OUT/after-nuke.json"
"""


def _config(alias: str, instances: int, benchmark: str) -> dict[str, object]:
    return {
        "ruby_version": "3.1",
        "per_instance_type": {"tasks": 1, "instances": instances},
        "aws": [{"instance_type": "c7i.large", "alias": alias}],
        "benchmarks": {
            "names": [benchmark],
            "executables": ["interp"],
            "warmup_iterations": 0,
            "bench_iterations": 1,
        },
        "prices": {"aws/c7i.large": 0.0893},
    }


def _twin(tmp_path: Path) -> tuple[dict[str, str], Path, Path, float]:
    out, state = tmp_path / "out", tmp_path / "twin"
    out.mkdir()
    # killvm's task (the fake suite's `sleepy`: one 60 s iteration) outlasts the kill.
    runs = (("killvm", 2, "sleepy"), ("failboot", 1, "fib"), ("noboot", 1, "fib"))
    for alias, instances, benchmark in runs:
        (out / f"{alias}.json").write_text(json.dumps(_config(alias, instances, benchmark)))
    env = {
        **os.environ,
        "CLOUDBENCH_HOME": str(tmp_path / "home"),
        "OUT": str(out),
        "SUITE": str(SUITE),
        "PYTHONPATH": str(ROOT),
    }
    faults = ["--kill-vm", "killvm:15", "--fail-boot", "failboot:pip", "--no-boot", "noboot"]
    command = [str(ROOT / "scripts" / "cloud-twin"), "--state-dir", str(state), *faults, "--"]
    started = time.monotonic()
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
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=180)
    elapsed = time.monotonic() - started
    sys.stderr.write(f"twin faults: {elapsed:.0f}s\n")
    return {"stdout": stdout[-3000:], "stderr": stderr[-6000:]}, out, state, elapsed


def test_failed_vms_are_noticed_and_named_then_nuke_leaves_nothing(tmp_path: Path) -> None:
    logs, out, state, _ = _twin(tmp_path)
    tail = f"{logs}\n(twin logs: {state}; outputs: {out})"
    assert (out / "status").is_file(), tail
    status = dict(line.split("=") for line in (out / "status").read_text().split())
    text = {n: (out / f"{n}.out").read_text() for n in ("killvm", "failboot", "noboot")}

    # --kill-vm: one VM gone, its task done by the type's other VM.
    assert status["killvm"] == "0", text["killvm"][-6000:]
    assert "vanished: EC2 reports it terminated" in text["killvm"], text["killvm"][-6000:]
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if any(p.glob("killvm*"))]
    (output,) = run_dir.glob("killvm*/output.json")
    assert "sleepy" in json.loads(output.read_text())["raw_data"]["interp"]
    (task,) = json.loads((run_dir / "manifest.json").read_text())["tasks"]
    first, *_, last = task["attempts"]
    assert first["error_type"] == "instance_terminated", task
    assert task["status"] == "completed" and last["host"] != first["host"], task

    # --fail-boot: the cause line, from the VM's own report, reaches the terminal.
    assert status["failboot"] == "1", text["failboot"][-6000:]
    assert "every runner of failboot has exited with 1 task(s) left: VM i-" in text["failboot"]
    cause = "boot/runner error: failed at step 'installing the runner from the master's wheelhouse'"
    # ... ending with pip's own last line, the failed command's.
    assert f"{cause} (exit 1): ERROR: Could not open requirements file" in text["failboot"]

    # --no-boot: stopped at the deadline, not after Terraform's 10 minutes.
    assert status["noboot"] == "1", text["noboot"][-6000:]
    assert "never called in within --boot-timeout 30s" in text["noboot"], text["noboot"]

    # The same meta served every run: the orchestrator instance was never replaced.
    first = json.loads((out / "after-killvm.json").read_text())
    last = json.loads((out / "after-noboot.json").read_text())
    assert len(first["instances"]) == 2 and first["instances"] == last["instances"], (first, last)
    # Re-applying meta for the second and third runs planned no change at all.
    meta_log = (tmp_path / "logs" / "meta-default.log").read_text()
    applies = [line for line in meta_log.splitlines() if line.startswith("Apply complete!")]
    assert len(applies) == 3 and "Resources: 0 added" not in applies[0], applies
    assert all("0 added, 0 changed, 0 destroyed" in line for line in applies[1:]), applies
    # And nuke leaves nothing.
    assert status["nuke"] == "0", (out / "nuke.out").read_text()[-3000:]
    after = json.loads((out / "after-nuke.json").read_text())
    assert all(not found for found in after.values()), after

"""Spot capacity through the AWS twin (issue 27), two runs in one twin session:

- `spotty`, two spot VMs, one of them interrupted (`--interrupt spotty:15`: 15 s after
  its runner started it gets EC2's spot interruption notice in its IMDS, and is reclaimed
  30 s later). The interrupted runner fails its task `preempted` in time; the type's
  other VM runs it to completion.
- `spotone`, one spot VM, interrupted the same way: with no VM of the type left and work
  to do, the master launches a replacement spot VM (`terraform apply -target`), which
  completes the task; the terminal and the ledger say so.
 The instances were launched by the real Terraform AWS provider with
`instance_market_options` (moto records them as spot; the IMDS says so and the runner
reads it from there), the ledger prices them from the spot price history of the zone used
(moto's history patched by tests/twin/fidelity.py: its own is one price from 2006), and
every task's metadata carries the VM's boot stages. Real and stand-in parts: as in
test_e2e.py.

Opt-in like test_faults.py (marker `twin_faults`, CLOUDBENCH_TWIN_FAULTS=1): it is a
fault test and takes a twin session of its own (11 min measured on two busy cores).
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
for name in spotty spotone; do
  cloudbench run "$OUT/$name.json" --ruby-bench "$SUITE" --yes >"$OUT/$name.out" 2>&1
  echo "$name=$?" >>"$OUT/status"
  meta="$CLOUDBENCH_HOME/terraform/default/meta"
  python -m tests.twin.machines "$meta" >"$OUT/$name-machines.json"
done
"""

CONFIG = {
    "ruby_version": "3.1",
    "capacity": "spot",
    "per_instance_type": {"tasks": 1, "instances": 2},
    "aws": [{"instance_type": "c7i.large", "alias": "spotty"}],
    # `sleepy`: one 60 s iteration, so the notice at 15 s finds the task running.
    "benchmarks": {"names": ["sleepy"], "executables": ["interp"],
                   "warmup_iterations": 0, "bench_iterations": 1},
    "prices": {"aws/c7i.large": 0.0893},
}  # fmt: skip


def _twin(tmp_path: Path) -> tuple[str, Path, Path]:
    out, state = tmp_path / "out", tmp_path / "twin"
    out.mkdir()
    (out / "spotty.json").write_text(json.dumps(CONFIG))
    one = {**CONFIG, "per_instance_type": {"tasks": 1, "instances": 1},
           "aws": [{"instance_type": "c7i.large", "alias": "spotone"}]}  # fmt: skip
    (out / "spotone.json").write_text(json.dumps(one))
    env = {**os.environ, "CLOUDBENCH_HOME": str(tmp_path / "home"), "OUT": str(out),
           "SUITE": str(SUITE), "PYTHONPATH": str(ROOT)}  # fmt: skip
    command = [str(ROOT / "scripts" / "cloud-twin"), "--state-dir", str(state),
               "--interrupt", "spotty:15", "--interrupt", "spotone:15",
               "--", "bash", "-c", STEPS]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=RUN_LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=180)
    sys.stderr.write(f"twin spot: {time.monotonic() - started:.0f}s\n")
    return stdout[-3000:] + stderr[-6000:], out, state


def test_an_interrupted_spot_task_is_retried_and_completes(tmp_path: Path) -> None:
    logs, out, state = _twin(tmp_path)
    tail = f"{logs}\n(twin logs: {state}; outputs: {out})"
    assert (out / "status").is_file(), tail
    text = (out / "spotty.out").read_text()
    status = (out / "status").read_text().split()
    assert status[0] == "spotty=0", text[-6000:]

    # The notice reached one runner through its IMDS; it failed the task `preempted` and
    # the other spot VM completed it.
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if any(p.glob("spotty*"))]
    (task,) = json.loads((run_dir / "manifest.json").read_text())["tasks"]
    first, *_, last = task["attempts"]
    assert task["status"] == "completed" and first["error_type"] == "preempted", task
    assert last["host"] != first["host"], task
    machines = json.loads((out / "spotty-machines.json").read_text())["machines"]
    messages = sorted(str(m["message"]) for m in machines)
    assert any(m.startswith("preempted: EC2 spot interruption notice") for m in messages), machines

    # Spot, as read from the VM's metadata service, and the VM's boot stages.
    (meta_path,) = run_dir.glob("spotty*/metadata.json")
    metadata = json.loads(meta_path.read_text())
    assert metadata["instance"]["lifecycle"] == "spot", metadata["instance"]
    boot = metadata["boot"]
    assert {"instance_start", "user_data_start", "runner_installed", "first_claim",
            "first_benchmark"} <= set(boot["stages"]), boot  # fmt: skip
    assert boot["time_to_first_benchmark_s"] > 0, boot

    # The ledger and the report say spot, priced from the zone's spot price history.
    ledger = json.loads((run_dir / "cost-ledger.json").read_text())
    (entry,) = ledger["entries"]
    assert entry["capacity"] == "spot" and entry["usd_per_hour"] == 0.0301, entry
    assert entry["price_source"] == "aws-spot-price-history" and entry["price_date"], entry
    assert "spot: c7i.large in us-east-1" in text and "at 0.0301 USD/h" in text, text[-6000:]
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    (row,) = summary["instance_types"]
    assert row["capacity"] == "spot" and row["time_to_first_benchmark_s"]["machines"] >= 1, row

    # spotone: its only VM reclaimed with the task left; a replacement completed it.
    text = (out / "spotone.out").read_text()
    assert status[1:] == ["spotone=0"], text[-6000:]
    line = "spotone: every VM was reclaimed with work left; launched 1 replacement VM(s) as spot"
    assert line in text, text[-6000:]
    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if any(p.glob("spotone*"))]
    (task,) = json.loads((run_dir / "manifest.json").read_text())["tasks"]
    first, *_, last = task["attempts"]
    assert task["status"] == "completed" and first["error_type"] == "preempted", task
    assert last["host"] != first["host"], task
    (entry,) = json.loads((run_dir / "cost-ledger.json").read_text())["entries"]
    assert entry["vms"] == 2 and entry["notes"] == [line], entry

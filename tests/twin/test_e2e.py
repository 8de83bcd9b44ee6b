"""The cloud path end to end through the AWS twin (scripts/cloud-twin), then its faults,
then `cloudbench nuke`: one twin session and one meta deployment for all of it (the
module's `twin` fixture), four tests reading what it left.

1. The end-to-end run (config/twin-aws.json, an x86 and an arm64 type): meta apply,
   orchestrator VM, runner VMs through their user-data (the wheel from the orchestrator
   over the twin's network over HTTPS with the pinned certificate, ruby-bench from
   the bucket), benchmarks, presigned uploads to S3, archive, download, report, teardown.
2. One run against the same meta with three faulty types (issue 23's "Tests for each"):
   - `--kill-vm killvm:3` with `instances: 2`: the VM whose benchmark started first is
     killed 3 s into it; EC2 reports it terminated, the master hands its task back and
     the type's other VM completes it.
   - `--fail-boot failpip:pip`: the runner cannot be installed (pip fails); the user-data's
     EXIT trap reports `error` with its last lines, the master prints the cause.
   - `--fail-boot failapt:apt`: `apt-get install` fails before the VM can read its token
     and call in; the cause is only on its serial console, which the master reads
     (GetConsoleOutput) once EC2 says the instance is gone, and prints.
   - Spot capacity (issue 27), `--interrupt spotty:2` / `spotone:2`: 2 s into a benchmark
     the VM gets EC2's spot interruption notice in its IMDS and is reclaimed 30 s later.
     `spotty` (two spot VMs): the runner fails its task `preempted` in time, the other
     VM completes it; metadata says `lifecycle: spot` (read from IMDS) and carries the
     boot stages; the ledger prices it from the zone's spot price history. `spotone` (one
     spot VM): with no VM left and work to do, the master launches a replacement spot VM
     (`terraform apply -target`), which completes the task.
   The run exits 1 (two types failed) after the other types' tasks completed.
3. `--no-boot noboot` in a run of its own, beside run 2 (`--reuse-orchestrator`, once run
   2's master has re-applied meta): EC2 keeps the instance `pending`; the run stops at
   --boot-timeout with "never called in". It cannot share run 2: Terraform's apply of the
   run's stack waits for every instance to run (as on AWS) and fails at the deadline,
   which ends that run before the other types could finish.
   Run 2 re-applies the meta stack: Terraform plans no change, the orchestrator instance
   is kept.
4. `cloudbench nuke --provider aws` with the meta stack still there leaves nothing.

Real: Terraform with the real AWS provider, the project's stacks, the master, the
orchestrator VM booting through its user-data (the master's wheel, PostgreSQL, systemd
unit, HTTPS only with the master's self-signed certificate), runner VMs booting through
theirs (the wheel from the orchestrator over HTTPS, verified against that certificate
under its name, ruby-bench from the bucket), benchmark processes.
Stand-ins, because they cannot exist here: AWS's APIs (moto's server), the VMs (podman
containers from a Debian image with the packages the user-data installs; both instance
types run on this machine's CPU, so the numbers say nothing about either), the instance
metadata service (tests/twin/imds.py in each VM's namespace), and ruby-bench (the small
tests/fake_ruby_bench; its `sleepy` sleeps 14 s here through --vm-env). The twin does not
enforce security groups.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "fake_ruby_bench"
CONFIG = ROOT / "config" / "twin-aws.json"
RUN_LIMIT = 900  # seconds; then the twin is stopped and the tests fail with its logs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_LIMIT + 240)]

FAULTS = [
    *("--kill-vm", "killvm:3", "--fail-boot", "failpip:pip", "--fail-boot", "failapt:apt"),
    *("--no-boot", "noboot"),
    *("--interrupt", "spotty:2", "--interrupt", "spotone:2"),
    # The fake suite's `sleepy` (one iteration) outlasts the kill (3 s and the twin's 1 s
    # look) and the spot notice (2 s, the twin's look, the runner's 5 s one). Every VM's
    # benchmark holds CPU 0 of this machine (the shared CPU leases) for that long, so the
    # type's second attempt and every other test's runner wait for it: no longer than needed.
    *("--vm-env", "FAKE_BENCH_SLEEP=14", "--vm-env", "CLOUDBENCH_PASS_ENV=FAKE_BENCH_SLEEP"),
]

STEPS = r"""
set -u
stamp() { echo "$1 $(date +%s)" >>"$OUT/times"; }
run() {  # NAME CONFIG [OPTIONS]: one cloudbench run, its output and exit status kept
  name=$1 config=$2; shift 2
  cloudbench run "$config" --ruby-bench "$SUITE" --yes "$@" >"$OUT/$name.out" 2>&1
  echo "$name=$?" >>"$OUT/status"; stamp "$name"
}
stamp start
run e2e "$CONFIG"
python -m tests.twin.machines "$CLOUDBENCH_HOME/terraform/default/meta" >"$OUT/machines.json"
python -m tests.twin.tlsprobe "$CLOUDBENCH_HOME/terraform/default/meta" >"$OUT/tls.json"
ls "$CLOUDBENCH_TWIN_LOGS/vms" >"$OUT/e2e-vms.txt"
python -m tests.twin.inventory >"$OUT/after-e2e.json"
# The no-boot run beside the faults run, once that one's master re-applied meta (the twin's
# log names each run's first instance: by then meta is applied and the run's stack too).
(
  until grep -Eq ' \((killvm|spot[a-z]*)\) booted' "$CLOUDBENCH_TWIN_LOGS/twin.log"; do
    sleep 1
  done
  run noboot "$OUT/noboot.json" --boot-timeout 15 --reuse-orchestrator
) &
run faults "$OUT/faults.json"
wait
python -m tests.twin.inventory >"$OUT/before-nuke.json"
cloudbench nuke --provider aws --yes >"$OUT/nuke.out" 2>&1; echo "nuke=$?" >>"$OUT/status"
stamp nuke
python -m tests.twin.inventory >"$OUT/after-nuke.json"
"""


def _config(types: list[tuple[str, int]], benchmark: str) -> dict[str, object]:
    def entry(alias: str, instances: int) -> dict[str, object]:
        found: dict[str, object] = {"instance_type": "c7i.large", "alias": alias}
        found["instances"] = instances
        if alias.startswith("spot"):
            found["capacity"] = "spot"
        return found

    return {
        "ruby_version": "3.1",
        "per_instance_type": {"tasks": 1, "instances": 1},
        "aws": [entry(alias, instances) for alias, instances in types],
        "benchmarks": {
            "names": [benchmark],
            "executables": ["interp"],
            "warmup_iterations": 0,
            "bench_iterations": 1,
        },
        "prices": {"aws/c7i.large": 0.0893},
    }


@dataclass
class Session:
    base: Path  # the command's working directory (results/, logs/)
    out: Path  # what the steps wrote
    state: Path  # the twin's state and logs
    home: Path
    status: dict[str, str]
    tail: str  # for assertion messages

    def text(self, name: str) -> str:
        path = self.out / f"{name}.out"
        return path.read_text() if path.is_file() else f"(no {path})"

    def json(self, name: str) -> dict[str, object]:
        return dict(json.loads((self.out / f"{name}.json").read_text()))

    def run_dir(self, alias: str) -> Path:
        (found,) = [p for p in (self.base / "results").iterdir() if any(p.glob(f"{alias}*"))]
        return found


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Session:
    base = tmp_path_factory.mktemp("twin-session")
    home, out, state = base / "home", base / "out", base / "twin"
    out.mkdir()
    faulty = [("killvm", 2), ("failpip", 1), ("failapt", 1), ("spotty", 2), ("spotone", 1)]
    (out / "faults.json").write_text(json.dumps(_config(faulty, "sleepy")))
    (out / "noboot.json").write_text(json.dumps(_config([("noboot", 1)], "fib")))
    env = {
        **os.environ,
        "CLOUDBENCH_HOME": str(home),
        "OUT": str(out),
        "CONFIG": str(CONFIG),
        "SUITE": str(SUITE),
        "PYTHONPATH": str(ROOT),
    }
    command = [str(ROOT / "scripts" / "cloud-twin"), "--state-dir", str(state), *FAULTS, "--"]
    started = time.monotonic()
    proc = subprocess.Popen(
        [*command, "bash", "-c", STEPS],
        cwd=base,
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
    elapsed = time.monotonic() - started
    times = (out / "times").read_text().split() if (out / "times").is_file() else []
    sys.stderr.write(f"twin session: {elapsed:.0f}s (steps, epoch seconds: {times})\n")
    tail = f"{stdout[-3000:]}{stderr[-6000:]}\n(twin logs: {state}; outputs: {out})"
    status_file = out / "status"
    assert status_file.is_file(), tail
    status = dict(line.split("=") for line in status_file.read_text().split())
    assert proc.returncode == 0, tail  # the last step's (the inventory after the nuke)
    return Session(base, out, state, home, status, tail)


def test_cloud_run_through_the_twin(twin: Session) -> None:
    assert twin.status.get("e2e") == "0", twin.text("e2e")[-6000:] + twin.tail

    # The run's results came back from both types, and the report was built from them.
    run_dir = twin.run_dir("c7i")
    outputs = {p.parent.name.split("-")[0]: p for p in run_dir.glob("*/output.json")}
    assert set(outputs) == {"c7i", "c7g"}, twin.tail
    for path in outputs.values():
        assert {"fib", "nbody"} <= set(json.loads(path.read_text())["raw_data"]["interp"])
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert not summary["excluded"], summary["excluded"]

    # Both runner VMs reported their stages to the orchestrator, up to `finished`.
    machines = twin.json("machines")["machines"]
    assert isinstance(machines, list)
    stages = {m["alias"]: m["stage"] for m in machines}
    assert stages == {"c7i": "finished", "c7g": "finished"}, machines
    assert all(m["provider"] == "aws" and m["instance_id"].startswith("i-") for m in machines)

    # After the run the shared meta deployment is still there.
    after = twin.json("after-e2e")
    assert after["vpcs"] and after["buckets"] and after["ssm_parameters"], after
    assert len(after["instances"]) == 2, after  # type: ignore[arg-type]  # orchestrator, bastion

    # TLS end to end: the master and the runners (whose reports above reached it) spoke
    # HTTPS to an orchestrator that serves nothing else; cleartext, the system's CAs and
    # another certificate are refused, the master's refusal is one line naming the fix.
    tls: dict[str, Any] = json.loads((twin.out / "tls.json").read_text())
    assert str(tls["url"]).startswith("https://"), tls
    assert str(tls["public_url"]).startswith("https://"), tls
    assert tls["pinned"] == {"ok": True, "status": 200}, tls
    probes = {k: tls[k] for k in ("plain_http", "system_cas", "other_cert")}
    assert all(probe["ok"] is False for probe in probes.values()), tls
    assert "CERTIFICATE_VERIFY_FAILED" in probes["system_cas"]["error"], tls
    assert "CERTIFICATE_VERIFY_FAILED" in probes["other_cert"]["error"], tls
    e2e_ids = (twin.out / "e2e-vms.txt").read_text().split()
    logs = [twin.state / "vms" / i / "var-log" / "cloudbench-runner.log" for i in e2e_ids]
    runner_logs = [p.read_text() for p in logs if p.is_file()]
    assert len(runner_logs) == 2, runner_logs
    for text in runner_logs:
        assert "orchestrator https://cloudbench-orchestrator:8000 at " in text, text[:2000]
        assert "(pinned certificate)" in text, text[:2000]
    refused = str(tls["master_other_cert"])
    assert refused.startswith("TlsRefused: ") and "\n" not in refused, refused
    assert "cloudbench nuke --provider aws" in refused, refused

    # Each type went to a zone that offers it; the end said what stays up (issue 25).
    said = twin.text("e2e")
    assert "aws zone for c7i.large: us-east-1a" in said, said[-6000:]
    assert "aws zone for c7g.medium: us-east-1a" in said, said[-6000:]
    # c7i.large 2 + c7g.medium 1 + the meta stack's 2 + 2 vCPUs, against the twin's quota.
    assert "in us-east-1: 0 in use + 7 for this run = 7 of 32: ok" in said, said[-6000:]
    assert "still up: AWS meta deployment 'default' in us-east-1" in said, said[-6000:]
    assert "remove it: cloudbench nuke --provider aws --region us-east-1" in said, said[-6000:]

    # Four VMs booted through their user-data: orchestrator, bastion and two runners.
    ids = (twin.out / "e2e-vms.txt").read_text().split()
    consoles = [(twin.state / "vms" / i / "console.log").read_text() for i in ids]
    assert len(consoles) == 4 and all("[twin-vm] booting" in c for c in consoles), consoles
    # The runners' user-data wrote its steps to the serial console (GetConsoleOutput).
    runners = [c for c in consoles if "cloudbench i-" in c]
    assert len(runners) == 2 and all("starting the runner" in c for c in runners), consoles


def test_failed_vms_are_noticed_and_named(twin: Session) -> None:
    text = twin.text("faults")
    assert twin.status.get("faults") == "1", text[-6000:] + twin.tail

    # --kill-vm: one VM gone, its task done by the type's other VM.
    assert "vanished: EC2 reports it terminated" in text, text[-6000:]
    run_dir = twin.run_dir("killvm")
    (output,) = run_dir.glob("killvm*/output.json")
    assert "sleepy" in json.loads(output.read_text())["raw_data"]["interp"]
    tasks = json.loads((run_dir / "manifest.json").read_text())["tasks"]
    (task,) = [t for t in tasks if t["alias"] == "killvm"]
    first, *_, last = task["attempts"]
    assert first["error_type"] == "instance_terminated", task
    assert task["status"] == "completed" and last["host"] != first["host"], task

    # --fail-boot pip: the cause line, from the VM's own report, reaches the terminal ...
    assert "every runner of failpip has exited with 1 task(s) left: VM i-" in text, text
    cause = "boot/runner error: failed at step 'installing the runner from the master's wheelhouse'"
    # ... ending with pip's own last line, the failed command's.
    assert f"{cause} (exit 1): ERROR: Could not open requirements file" in text, text

    # --fail-boot apt: the VM never called in; its cause comes from its serial console.
    assert "every runner of failapt has exited with 1 task(s) left: VM i-" in text, text
    step = "installing what reads the runner token (python3-boto3)"
    console = (
        f"vanished: EC2 reports it terminated; console: boot failed at step '{step}' "
        "(exit 100): E: Unable to fetch some archives (twin: --fail-boot apt)"
    )
    assert console in text, text

    # --no-boot: stopped at the deadline, not after Terraform's 10 minutes.
    noboot = twin.text("noboot")
    assert twin.status.get("noboot") == "1", noboot[-6000:]
    assert "never called in within --boot-timeout 15s" in noboot, noboot

    # The same meta served every run: the orchestrator instance was never replaced.
    first_seen, last_seen = twin.json("after-e2e"), twin.json("before-nuke")
    assert len(first_seen["instances"]) == 2, first_seen  # type: ignore[arg-type]
    assert first_seen["instances"] == last_seen["instances"], (first_seen, last_seen)
    # Re-applying meta for the second run planned no change at all.
    meta_log = (twin.base / "logs" / "meta-default.log").read_text()
    applies = [line for line in meta_log.splitlines() if line.startswith("Apply complete!")]
    assert len(applies) == 2 and "Resources: 0 added" not in applies[0], applies
    assert all("0 added, 0 changed, 0 destroyed" in line for line in applies[1:]), applies


def _task(run_dir: Path, alias: str) -> dict[str, Any]:
    tasks = json.loads((run_dir / "manifest.json").read_text())["tasks"]
    (task,) = [t for t in tasks if t["alias"] == alias]
    return dict(task)


def test_spot_interruptions_are_retried_or_replaced(twin: Session) -> None:
    text = twin.text("faults")
    run_dir = twin.run_dir("spotty")

    # spotty: the notice reached one runner through its IMDS; it failed the task
    # `preempted` and the type's other spot VM completed it.
    task = _task(run_dir, "spotty")
    first, *_, last = task["attempts"]
    assert task["status"] == "completed" and first["error_type"] == "preempted", task
    assert last["host"] != first["host"], task

    # Spot, as read from the VM's metadata service, and the VM's boot stages.
    (meta_path,) = run_dir.glob("spotty*/metadata.json")
    metadata = json.loads(meta_path.read_text())
    assert metadata["instance"]["lifecycle"] == "spot", metadata["instance"]
    boot = metadata["boot"]
    stages = {"instance_start", "user_data_start", "runner_installed", "first_claim"}
    assert stages | {"first_benchmark"} <= set(boot["stages"]), boot
    assert boot["time_to_first_benchmark_s"] > 0, boot

    # The ledger says spot, priced from the zone's spot price history (the twin's
    # stand-in history: tests/twin/fidelity.py).
    ledger = json.loads((run_dir / "cost-ledger.json").read_text())
    entries = {e["alias"]: e for e in ledger["entries"]}
    spotty = entries["spotty"]
    assert spotty["capacity"] == "spot" and spotty["usd_per_hour"] == 0.0301, spotty
    assert spotty["price_source"] == "aws-spot-price-history" and spotty["price_date"], spotty
    assert entries["killvm"]["capacity"] == "on-demand", entries
    assert "spot: c7i.large in us-east-1" in text and "at 0.0301 USD/h" in text, text[-6000:]

    # spotone: its only VM was reclaimed with the task left; a replacement completed it.
    line = "spotone: every VM was reclaimed with work left; launched 1 replacement VM(s) as spot"
    assert line in text, text[-6000:]
    task = _task(run_dir, "spotone")
    first, *_, last = task["attempts"]
    assert task["status"] == "completed" and first["error_type"] == "preempted", task
    assert last["host"] != first["host"], task
    assert entries["spotone"]["vms"] == 2 and entries["spotone"]["notes"] == [line], entries


def test_nuke_leaves_nothing(twin: Session) -> None:
    assert twin.status.get("nuke") == "0", twin.text("nuke")[-3000:] + twin.tail
    # Before the nuke the shared meta deployment was still there; after it, nothing is.
    before = twin.json("before-nuke")
    assert before["vpcs"] and before["buckets"] and before["ssm_parameters"], before
    # A public subnet in each of moto's six us-east-1 zones (meta's zone_subnets).
    assert len(before["subnets"]) == 6, before  # type: ignore[arg-type]
    assert len(before["instances"]) == 2, before  # type: ignore[arg-type]
    after = twin.json("after-nuke")
    assert all(not found for found in after.values()), after
    # Every Terraform state is gone with its working copy.
    leftover = list((twin.home / "terraform").glob("**/*.tfstate"))
    assert all(not json.loads(p.read_text()).get("resources") for p in leftover), leftover

"""Orchestration overhead of a local run: many short tasks through the whole system.

Runs `cloudbench run` (embedded orchestrator, local runners, host executor, the fake
ruby-bench suite) and compares its wall time with the time the benchmarks themselves
took (each task's metadata.json `duration_seconds`) divided by the slots working in
parallel. Target: overhead <= 1 s per task.

    uv run python benchmarks/overhead.py --tasks 40 --slots 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKE_SUITE = ROOT / "tests" / "fake_ruby_bench"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40, help="tasks in total")
    parser.add_argument("--slots", type=int, default=2, help="slots of the one local runner")
    parser.add_argument("--benchmark", default="fib", help="fake-suite benchmark per task")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cb-overhead-") as tmp:
        return measure(Path(tmp), args.tasks, args.slots, args.benchmark)


def measure(tmp: Path, tasks: int, slots: int, benchmark: str) -> int:
    config = {
        "ruby_version": "system",
        "per_instance_type": {"tasks": tasks},
        "local": [{"instance_type": "local", "alias": "bench"}],
        "benchmarks": {
            "names": [benchmark],
            "executables": ["interp"],
            "warmup_iterations": 0,
            "bench_iterations": 1,
        },
    }
    (tmp / "config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBENCH_")}
    env["CLOUDBENCH_HOME"] = str(tmp / "home")
    command = [
        sys.executable,
        "-m",
        "cloudbench",
        "run",
        str(tmp / "config.json"),
        "--json",
        "--yes",
        "--executor",
        "host",
        "--slots",
        str(slots),
        "--ruby-bench",
        str(FAKE_SUITE),
        "--state-dir",
        str(tmp / "state"),
        "--results-dir",
        str(tmp / "results"),
    ]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        print(f"run failed with exit code {done.returncode}")
        return 1
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    results = Path(summary["results_dir"])
    durations = [
        json.loads(path.read_text())["duration_seconds"] for path in results.glob("*/metadata.json")
    ]
    ideal = sum(durations) / slots
    per_task = (wall - ideal) / (tasks / slots)
    print(f"tasks {tasks}, slots {slots}, benchmark {benchmark}")
    print(f"wall time (whole command, incl. startup/teardown): {wall:8.2f} s")
    print(f"sum of benchmark times / slots:                     {ideal:8.2f} s")
    print(
        f"orchestration overhead per task (per slot):         {per_task:8.3f} s "
        f"(target <= 1 s: {'ok' if per_task <= 1 else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

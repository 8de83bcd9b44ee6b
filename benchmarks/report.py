"""Benchmark `cloudbench report` on a large synthetic result set.

    uv run python benchmarks/report.py                 # 100 types x 10 tasks x 80 x 2
    uv run python benchmarks/report.py --types 20

Writes the results folder (not timed), then builds the report in a child process and
prints its wall time and peak RSS (RUSAGE_CHILDREN), beside a baseline measured in the
same run: the same child only loading the folder (reading every output.json), so the
difference is the statistics and rendering. Targets: < 30 s and < 1 GB.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.report.synth import random_run  # noqa: E402

CHILD = """
import sys
from pathlib import Path
from cloudbench.report.load import load_run
run = Path(sys.argv[1])
if sys.argv[2] == "load":
    load_run(run)
else:
    from cloudbench.report.build import build_report
    build_report([run], out=Path(sys.argv[3]), offline=True)
"""


def _child(*args: str) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one child. CPU time is shown as well because the
    machine may be shared: wall time then measures the neighbours as much as the code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", CHILD, *args], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, max(after.ru_maxrss, before.ru_maxrss) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--types", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--benchmarks", type=int, default=80)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = random_run(
            Path(tmp) / "results",
            types=args.types,
            tasks=args.tasks,
            benchmarks=args.benchmarks,
            executables=("interp", "yjit"),
            machines_per_type=args.tasks,
        )
        load_wall, load_cpu, load_rss = _child(str(run), "load")
        wall, cpu, rss = _child(str(run), "report", str(Path(tmp) / "out"))
        size = (Path(tmp) / "out" / "index.html").stat().st_size / 1e6
    print(f"{args.types} types x {args.tasks} tasks x {args.benchmarks} benchmarks x 2 executables")
    print(f"load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"baseline (load only): {load_wall:6.1f} s wall, {load_cpu:6.1f} s CPU, "
        f"peak RSS {load_rss:6.0f} MB"
    )
    print(
        f"full report:          {wall:6.1f} s wall, {cpu:6.1f} s CPU, "
        f"peak RSS {rss:6.0f} MB, index.html {size:.1f} MB"
    )
    print(f"report / load-only wall: {wall / load_wall:.2f}x  (targets: < 30 s, < 1 GB)")


if __name__ == "__main__":
    main()

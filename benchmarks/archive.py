"""Benchmark the results-archive build against `tar czf` over the same files.

    uv run python benchmarks/archive.py            # 2,000 tasks
    uv run python benchmarks/archive.py --tasks 10000

Builds N synthetic runner tarballs in LocalStorage (temp dir), then, for each round, in
child processes: build_archive (its own peak RSS via wait4) and `tar czf` over the same
files extracted (gzip -6 in both). Each ratio compares a build with the tar run right
after it, so load from other users of the machine shows as spread, not as a bias.
Targets: 10,000 tasks in <= 0.5 x the wall time of tar czf; peak RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from cloudbench.orchestrator.archive import ArchiveTask, build_archive, task_directory
from cloudbench.orchestrator.storage.base import result_key
from cloudbench.orchestrator.storage.local import LocalStorage

RUN_ID = 1
BENCHES = [f"bench_{i:02d}" for i in range(60)]


def _files(rng: random.Random, task_id: int) -> dict[str, bytes]:
    """Roughly what ruby-bench writes: per-benchmark timings as json/csv/txt + metadata."""
    timings = {b: [round(rng.uniform(1, 900), 3) for _ in range(10)] for b in BENCHES}
    csv = "bench," + ",".join(f"iter{i}" for i in range(10)) + "\n"
    csv += "".join(f"{b},{','.join(map(str, t))}\n" for b, t in timings.items())
    txt = "".join(
        f"{b:<20} {sum(t) / len(t):10.3f} ms  stddev {max(t) - min(t):.2f}\n"
        for b, t in timings.items()
    )
    meta = {"task_id": task_id, "ruby": "3.4.1", "yjit": True, "cpu": "Graviton3"}
    return {
        "output.json": json.dumps({"raw_data": timings}).encode(),
        "output.csv": csv.encode(),
        "output.txt": txt.encode(),
        "metadata.json": json.dumps(meta).encode(),
    }


def _task(task_id: int) -> ArchiveTask:
    return ArchiveTask(
        task_id,
        "aws",
        f"c7g.{task_id % 7}xlarge",
        None,
        task_id,
        "completed",
        result_key=result_key(RUN_ID, task_id, lease=1),
    )


def generate(base: Path, tasks: int) -> None:
    storage = LocalStorage(base / "storage", "http://bench", b"k")
    extracted = base / "extracted"
    rng = random.Random(42)
    for task_id in range(1, tasks + 1):
        files = _files(rng, task_id)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(f"./{name}")
                info.size, info.mtime = len(data), int(time.time())
                tar.addfile(info, io.BytesIO(data))
        writer = storage.begin_write(result_key(RUN_ID, task_id, lease=1))
        writer.write(buffer.getvalue())
        writer.commit()
        folder = extracted / task_directory(_task(task_id))
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)


def child_build(base: Path, tasks: int) -> None:
    storage = LocalStorage(base / "storage", "http://bench", b"k")
    result = build_archive(
        storage=storage,
        run_id=RUN_ID,
        removed_tasks=0,
        tasks=(_task(i) for i in range(1, tasks + 1)),
        workdir=base / "work",
    )
    print(json.dumps({"size": result.size_bytes, "problems": result.tasks_with_problems}))


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of that one child, and its stdout."""
    start = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} exited {proc.returncode}")
    return wall, usage.ru_maxrss / 1024, out


def measure(base: Path, tasks: int) -> tuple[float, float, float]:
    """One build and one tar czf; returns (build wall, build RSS, tar wall)."""
    # Neither side fsyncs its output (tar does not either); syncing between the two keeps
    # the generator's or the other side's writeback off each one's clock.
    os.sync()
    build_wall, build_rss, out = timed(
        [sys.executable, __file__, "--tasks", str(tasks), "--child", str(base)]
    )
    built = json.loads(out)
    os.sync()
    tar_out = base / "tar.tar.gz"
    tar_wall, _, _ = timed(["tar", "czf", str(tar_out), "-C", str(base / "extracted"), "."])
    tar_size = tar_out.stat().st_size
    tar_out.unlink()
    print(
        f"build_archive {build_wall:6.2f}s  RSS {build_rss:6.1f} MB  "
        f"{built['size'] / 1e6:6.1f} MB  problems={built['problems']}  |  "
        f"tar czf {tar_wall:6.2f}s  {tar_size / 1e6:6.1f} MB  |  "
        f"wall {build_wall / tar_wall:.2f}x  size {built['size'] / tar_size:.2f}x",
        flush=True,
    )
    return build_wall, build_rss, tar_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="build/tar pairs to measure")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_build(args.child, args.tasks)
        return
    with tempfile.TemporaryDirectory(prefix="cb-archive-bench-") as tmp:
        base = Path(tmp)
        start = time.perf_counter()
        generate(base, args.tasks)
        print(f"generated {args.tasks} task tarballs in {time.perf_counter() - start:.1f}s")
        rounds = [measure(base, args.tasks) for _ in range(args.rounds)]
    ratios = sorted(build / tar for build, _, tar in rounds)
    peak = max(rss for _, rss, _ in rounds)
    print(
        f"wall ratio over {len(rounds)} rounds: best {ratios[0]:.2f}x  "
        f"median {statistics.median(ratios):.2f}x  worst {ratios[-1]:.2f}x (target <= 0.5)  "
        f"peak RSS {peak:.1f} MB (target < 200)"
    )


if __name__ == "__main__":
    main()

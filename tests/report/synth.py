"""Results folders written the way the master leaves them (manifest + task folders)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class SynthTask:
    task_id: int
    alias: str
    machine: str
    # executable → benchmark → bench iteration times (s)
    bench: dict[str, dict[str, list[float]]]
    provider: str = "aws"
    instance_type: str | None = None
    status: str = "completed"
    error: dict[str, str] | None = None
    maxrss: int = 50 << 20
    warmup: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)


def write_run(root: Path, run_id: int, tasks: list[SynthTask]) -> Path:
    run = root / str(run_id)
    run.mkdir(parents=True)
    entries = []
    for task in tasks:
        directory = f"{task.alias}-{task.task_id}"
        folder = run / directory
        folder.mkdir()
        raw = {
            exe: {
                name: {
                    "warmup": [times[0] * 1.5] * task.warmup,
                    "bench": times,
                    "maxrss": task.maxrss,
                    "rss": task.maxrss,
                    "RUBY_DESCRIPTION": "ruby 3.4.7 (2025-10-08 revision 7a5688e2a2)",
                }
                for name, times in benches.items()
            }
            for exe, benches in task.bench.items()
        }
        (folder / "output.json").write_text(json.dumps({"metadata": {}, "raw_data": raw}))
        (folder / "output.txt").write_text("synthetic\n")
        (folder / "output.csv").write_text("synthetic\n")
        meta = {
            "task_id": task.task_id,
            "run_id": run_id,
            "alias": task.alias,
            "provider": task.provider,
            "instance_type": task.instance_type or task.alias,
            "hostname": task.machine,
            "instance_id": task.machine,
            "cpu_model": f"CPU of {task.alias}",
            "logical_cores": 2,
            "physical_cores": 1,
            "kernel": "6.8.0",
            "ruby_description": "ruby 3.4.7 (2025-10-08 revision 7a5688e2a2)",
            "ruby_bench_commit": "09b76c8b0f94",
            "benchmarks": {
                "warmup_iterations": task.warmup,
                "bench_iterations": 3,
                "min_bench_time": None,
                "extra_args": [],
            },
            "started_at": "2026-11-27T10:00:00+00:00",
            "finished_at": "2026-11-27T10:05:00+00:00",
            **task.metadata,
        }
        (folder / "metadata.json").write_text(json.dumps(meta))
        entries.append(
            {
                "task_id": task.task_id,
                "provider": task.provider,
                "instance_type": task.instance_type or task.alias,
                "alias": task.alias,
                "run_number": task.task_id,
                "status": task.status,
                "directory": directory,
                "error": task.error,
                "problems": [],
                "files": ["metadata.json", "output.csv", "output.json", "output.txt"],
            }
        )
    manifest = {
        "format_version": 1,
        "run_id": run_id,
        "removed_tasks": 0,
        "task_count": len(entries),
        "tasks": entries,
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def random_run(
    root: Path,
    *,
    types: int,
    tasks: int,
    benchmarks: int,
    executables: tuple[str, ...],
    machines_per_type: int,
    iterations: int = 5,
    seed: int = 1,
    run_id: int = 1,
    names: list[str] | None = None,
) -> Path:
    """Types whose true speed differs, machine random effects and within-process noise."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.01, 1.0, size=benchmarks)
    out, next_id = [], 1
    for t in range(types):
        speed = 1.0 + 0.05 * t
        for k in range(tasks):
            machine = f"i-{t:03d}-{k % machines_per_type:03d}"
            effect = np.exp(rng.normal(0, 0.03))
            bench = {}
            for e, exe in enumerate(executables):
                means = base / speed / (1.0 + e) * effect
                noise = np.exp(rng.normal(0, 0.02, size=(benchmarks, iterations)))
                labels = names or [f"bench_{b:03d}" for b in range(benchmarks)]
                bench[exe] = {labels[b]: (means[b] * noise[b]).tolist() for b in range(benchmarks)}
            out.append(
                SynthTask(next_id, f"type{t:03d}", machine, bench, instance_type=f"c{t}.large")
            )
            next_id += 1
    return write_run(root, run_id, out)

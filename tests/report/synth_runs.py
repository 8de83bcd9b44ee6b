"""Runs whose truth is known: each type's true speed is given, noise is random."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.report.synth import SynthTask, write_run


def speed_run(
    root: Path,
    run_id: int,
    speeds: dict[str, float],
    *,
    tasks: int = 3,
    benchmarks: int = 6,
    seed: int = 1,
    noise: float = 0.02,
    machine_noise: float = 0.01,
) -> Path:
    """Each alias's time on each benchmark is base ÷ its speed; every task on its own
    machine (machine effect `machine_noise`) with per-iteration noise `noise`. The base
    times are the same in every run (seed 0), the noise differs with `seed`."""
    base = np.random.default_rng(0).uniform(0.01, 0.2, size=benchmarks)
    rng = np.random.default_rng(seed)
    out, next_id = [], 1
    for alias, speed in speeds.items():
        for k in range(tasks):
            effect = np.exp(rng.normal(0, machine_noise))
            times = base / speed * effect
            iterations = np.exp(rng.normal(0, noise, size=(benchmarks, 5)))
            bench = {
                "yjit": {
                    f"bench_{b}": (times[b] * iterations[b]).tolist() for b in range(benchmarks)
                }
            }
            out.append(
                SynthTask(
                    next_id, alias, f"i-{run_id}-{alias}-{k}", bench, instance_type=f"{alias}.large"
                )
            )
            next_id += 1
    return write_run(root, run_id, out)

"""Seeded simulations: the intervals cover the truth, and never pool iterations.

Synthetic groups: per-benchmark true times, a machine random effect (log-normal) shared
by every task on that machine, and within-process noise per iteration; each task's value
is the median of its iterations, as in a report.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from cloudbench.report.columns import mean_intervals
from cloudbench.report.stats import Group, speedup_interval

REPS = 120


def _group(
    rng: np.random.Generator,
    truth: NDArray[np.float64],
    machines: int,
    tasks_per: int,
    machine_sd: float,
    noise_sd: float,
    iterations: int = 5,
) -> tuple[Group, NDArray[np.float64]]:
    """(group of per-task medians, every iteration: tasks x benchmarks x iterations)."""
    effects = np.repeat(rng.normal(0, machine_sd, size=machines), tasks_per)
    n = machines * tasks_per
    noise = rng.normal(0, noise_sd, size=(n, truth.size, iterations))
    iters = truth[None, :, None] * np.exp(effects[:, None, None] + noise)
    values = np.median(iters, axis=2)
    return Group(values, np.repeat(np.arange(machines), tasks_per), int(rng.integers(2**31))), iters


def _coverage(machines: int, tasks_per: int) -> tuple[float, float]:
    rng = np.random.default_rng(42 + machines)
    speed = np.array([1.3, 1.6, 1.1, 2.0])
    base_truth = np.array([0.2, 0.05, 1.0, 0.4])
    true_geomean = float(stats.gmean(speed))
    hits, estimates = 0, []
    columns = np.arange(speed.size)
    for _ in range(REPS):
        base, _ = _group(rng, base_truth, machines, tasks_per, 0.05, 0.02)
        other, _ = _group(rng, base_truth / speed, machines, tasks_per, 0.05, 0.02)
        interval = speedup_interval(base, other, columns)
        assert interval.ci_low is not None and interval.ci_high is not None
        hits += interval.ci_low <= true_geomean <= interval.ci_high
        estimates.append(interval.estimate)
    return hits / REPS, float(np.mean(estimates)) / true_geomean


def test_few_machines_t_interval_covers() -> None:
    coverage, bias = _coverage(machines=4, tasks_per=2)
    assert coverage >= 0.85, coverage
    assert abs(bias - 1) < 0.02, bias


def test_many_machines_hierarchical_bootstrap_covers() -> None:
    coverage, bias = _coverage(machines=12, tasks_per=2)
    assert coverage >= 0.85, coverage
    assert abs(bias - 1) < 0.02, bias


def test_pooled_iterations_would_be_several_times_too_narrow() -> None:
    """Big machine-to-machine spread: pooling every iteration as if independent gives a
    far narrower interval that misses the truth; ours stays wide enough to cover it."""
    rng = np.random.default_rng(7)
    truth = np.array([0.5])
    ours_hits = pooled_hits = 0
    ratios = []
    for _ in range(REPS):
        group, iters = _group(
            rng, truth, machines=5, tasks_per=2, machine_sd=0.25, noise_sd=0.01, iterations=20
        )
        ours = mean_intervals(group)[0]
        assert ours.method == "t" and ours.ci_low is not None and ours.ci_high is not None
        pooled = iters.ravel()
        low, high = stats.t.interval(
            0.95, pooled.size - 1, loc=pooled.mean(), scale=stats.sem(pooled)
        )
        # The expected mean under the log-normal machine effect.
        expected = truth[0] * np.exp((0.25**2 + 0.01**2) / 2)
        ours_hits += ours.ci_low <= expected <= ours.ci_high
        pooled_hits += low <= expected <= high
        ratios.append((ours.ci_high - ours.ci_low) / (high - low))
    assert float(np.median(ratios)) > 3, np.median(ratios)
    assert ours_hits / REPS >= 0.85 and pooled_hits / REPS < 0.6, (ours_hits, pooled_hits)

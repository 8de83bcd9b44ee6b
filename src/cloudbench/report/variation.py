"""Spread and drift: between- vs within-machine CV, and the warm-up trend check."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from cloudbench.report.stats import Array, unit_means

# A bench window drifting by less than this (relative to its median) is not flagged,
# however significant: the iteration settings are long enough for practical purposes.
TREND_MIN_DRIFT = 0.02
TREND_ALPHA = 0.01


def cv(values: Array) -> float | None:
    values = values[~np.isnan(values)]
    if values.size < 2 or np.mean(values) == 0:
        return None
    return float(np.std(values, ddof=1) / np.mean(values))


def within_process_cv(series: list[Array]) -> float | None:
    """Median over tasks of the CV of a task's own iterations (noise inside one process)."""
    usable = [s for s in series if s.size >= 2]
    if not usable:
        return None
    length = min(s.size for s in usable)
    stacked = np.vstack([s[:length] for s in usable])
    return float(np.median(np.std(stacked, axis=1, ddof=1) / np.mean(stacked, axis=1)))


def between_within_cv(
    values: Array, machines: NDArray[np.int64]
) -> tuple[float | None, float | None]:
    """(between-machine CV, within-machine CV) of per-task values; None where undefined."""
    mask = ~np.isnan(values)
    values, machines = values[mask], machines[mask]
    if values.size < 2:
        return None, None
    mean = float(np.mean(values))
    _, machines = np.unique(machines, return_inverse=True)
    per_machine = unit_means(values[:, None], machines)[:, 0]
    between = float(np.std(per_machine, ddof=1)) / mean if per_machine.size >= 2 else None
    squares, df = 0.0, 0
    for machine in range(per_machine.size):
        on = values[machines == machine]
        if on.size >= 2:
            squares += float(np.sum((on - on.mean()) ** 2))
            df += on.size - 1
    within = math.sqrt(squares / df) / mean if df else None
    return between, within


def warmup_trend(series: list[Array]) -> bool | None:
    """Do the bench iterations still trend? None when no task has 3 or more iterations.

    Per task: the least-squares slope of time against iteration number, relative to the
    task's median. With two or more tasks, a one-sample t-test of those slopes against 0
    (tasks are the unit); with one task, the regression's own p-value. Flagged when
    significant at TREND_ALPHA and the implied drift over the window is >= TREND_MIN_DRIFT.
    """
    usable = [s for s in series if s.size >= 3]
    if not usable:
        return None
    length = min(s.size for s in usable)
    times = np.vstack([s[:length] for s in usable])
    x = np.arange(length, dtype=float) - (length - 1) / 2
    # Least-squares slope per task (one vectorised fit), relative to the task's median.
    slopes = (times @ x) / (x @ x) / np.median(times, axis=1)
    drift = abs(float(np.mean(slopes))) * (length - 1)
    if len(usable) == 1:
        p_value = float(stats.linregress(x, times[0]).pvalue)
    elif np.ptp(slopes) == 0:
        p_value = 0.0 if slopes[0] != 0 else 1.0
    else:
        p_value = float(stats.ttest_1samp(slopes, 0.0).pvalue)
    return bool(p_value < TREND_ALPHA and drift >= TREND_MIN_DRIFT)

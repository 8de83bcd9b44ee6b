"""Spread and drift: between- vs within-machine CV, and the warm-up trend check."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from cloudbench.report.stats import Array, unit_means

# A bench window drifting by less than this (relative to its median) is not flagged,
# however significant: the iteration settings are long enough for practical purposes.
TREND_MIN_DRIFT = 0.02
TREND_ALPHA = 0.01


def spread_columns(values: Array, machines: NDArray[np.int64]) -> dict[str, Array]:
    """Per column of tasks x benchmarks: n, machines, median, mean, SD, CV, and the
    between-machine CV (SD of machine means / mean) and within-machine CV (pooled SD of
    tasks on one machine / mean). NaN where undefined."""
    present = ~np.isnan(values)
    n = present.sum(axis=0)
    per_machine = unit_means(values, machines)  # machines x benchmarks
    on_machine = np.zeros(per_machine.shape)
    np.add.at(on_machine, machines, present.astype(float))
    n_machines = (on_machine > 0).sum(axis=0)
    # Columns with too few values give NaN (reported as null), not a warning.
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        sd = np.where(n >= 2, np.nanstd(values, axis=0, ddof=1), np.nan)
        between = np.where((n >= 2) & (n_machines >= 2),
                           np.nanstd(per_machine, axis=0, ddof=1) / mean, np.nan)  # fmt: skip
        squares = np.nansum((values - per_machine[machines]) ** 2, axis=0)
        df = np.maximum(on_machine - 1, 0).sum(axis=0)
        within = np.where((n >= 2) & (df > 0), np.sqrt(squares / np.maximum(df, 1)) / mean,
                          np.nan)  # fmt: skip
        return {
            "n": n, "machines": n_machines, "median": np.nanmedian(values, axis=0),
            "mean": mean, "sd": sd, "cv": np.where(mean != 0, sd / mean, np.nan),
            "between": between, "within": within,
        }  # fmt: skip


def within_process_cv(series: list[Array]) -> float | None:
    """Median over tasks of the CV of a task's own iterations (noise inside one process)."""
    usable = [s for s in series if s.size >= 2]
    if not usable:
        return None
    length = min(s.size for s in usable)
    stacked = np.vstack([s[:length] for s in usable])
    return float(np.median(np.std(stacked, axis=1, ddof=1) / np.mean(stacked, axis=1)))


def _slopes(series: list[Array]) -> tuple[Array, float, float | None] | None:
    """(relative slope per task, drift over the window, p-value when no t-test is needed)."""
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
        return slopes, drift, float(stats.linregress(x, times[0]).pvalue)
    if np.ptp(slopes) == 0:
        return slopes, drift, 0.0 if slopes[0] != 0 else 1.0
    return slopes, drift, None


def warmup_trends(columns: list[list[Array]]) -> list[bool | None]:
    """Per benchmark (its tasks' bench iterations): do they still trend? None when no
    task has 3 or more iterations.

    Per task: the least-squares slope of time against iteration number, relative to the
    task's median. With two or more tasks, a one-sample t-test of those slopes against 0
    (tasks are the unit); with one task, the regression's own p-value. Flagged when
    significant at TREND_ALPHA and the implied drift over the window is >= TREND_MIN_DRIFT.
    The t-tests run in one scipy call per task count, not one per benchmark.
    """
    out: list[bool | None] = [None] * len(columns)
    drifts: dict[int, float] = {}
    pending: dict[int, list[tuple[int, Array]]] = {}
    for i, series in enumerate(columns):
        found = _slopes(series)
        if found is None:
            continue
        slopes, drifts[i], p_value = found
        if p_value is None:
            pending.setdefault(slopes.size, []).append((i, slopes))
        else:
            out[i] = bool(p_value < TREND_ALPHA and drifts[i] >= TREND_MIN_DRIFT)
    for items in pending.values():
        p_values = stats.ttest_1samp(np.vstack([s for _, s in items]), 0.0, axis=1).pvalue
        for (i, _), p_value in zip(items, np.atleast_1d(p_values).tolist(), strict=True):
            out[i] = bool(p_value < TREND_ALPHA and drifts[i] >= TREND_MIN_DRIFT)
    return out

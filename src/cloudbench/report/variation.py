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
        between = np.where(
            (n >= 2) & (n_machines >= 2), np.nanstd(per_machine, axis=0, ddof=1) / mean, np.nan
        )
        squares = np.nansum((values - per_machine[machines]) ** 2, axis=0)
        df = np.maximum(on_machine - 1, 0).sum(axis=0)
        within = np.where((n >= 2) & (df > 0), np.sqrt(squares / np.maximum(df, 1)) / mean, np.nan)
        return {
            "n": n,
            "machines": n_machines,
            "median": np.nanmedian(values, axis=0),
            "mean": mean,
            "sd": sd,
            "cv": np.where(mean != 0, sd / mean, np.nan),
            "between": between,
            "within": within,
        }


def _by_shape(columns: list[list[Array]], minimum: int) -> list[tuple[list[int], Array]]:
    """Columns whose series have the same sizes, stacked: (column indices, columns x tasks
    x iterations), keeping the tasks with >= `minimum` iterations, cut to the shortest."""
    shapes: dict[tuple[int, ...], list[int]] = {}
    for i, series in enumerate(columns):
        shapes.setdefault(tuple(s.size for s in series), []).append(i)
    out = []
    for sizes, indices in shapes.items():
        keep = [k for k, n in enumerate(sizes) if n >= minimum]
        if keep:
            length = min(sizes[k] for k in keep)
            out.append(
                (indices, np.asarray([[columns[i][k][:length] for k in keep] for i in indices]))
            )
    return out


def within_process_cvs(columns: list[list[Array]]) -> list[float | None]:
    """Per benchmark: the median over tasks of the CV of a task's own iterations (noise
    inside one process); None when no task has 2 or more."""
    out: list[float | None] = [None] * len(columns)
    for indices, stacked in _by_shape(columns, 2):
        cvs = np.median(np.std(stacked, axis=2, ddof=1) / np.mean(stacked, axis=2), axis=1)
        for i, value in zip(indices, cvs.tolist(), strict=True):
            out[i] = value
    return out


def warmup_trends(columns: list[list[Array]]) -> list[bool | None]:
    """Per benchmark (its tasks' bench iterations): do they still trend? None when no
    task has 3 or more iterations.

    Per task: the least-squares slope of time against iteration number, relative to the
    task's median. With two or more tasks, a one-sample t-test of those slopes against 0
    (tasks are the unit); with one task, the regression's own p-value. Flagged when
    significant at TREND_ALPHA and the implied drift over the window is >= TREND_MIN_DRIFT.
    Computed for every benchmark whose series have the same shape at once.
    """
    out: list[bool | None] = [None] * len(columns)
    for indices, times in _by_shape(columns, 3):
        length = times.shape[2]
        x = np.arange(length, dtype=float) - (length - 1) / 2
        slopes = (times @ x) / (x @ x) / np.median(times, axis=2)  # columns x tasks
        drifts = np.abs(np.mean(slopes, axis=1)) * (length - 1)
        p_values = np.ones(len(indices))
        if times.shape[1] == 1:
            p_values = np.array([stats.linregress(x, t[0]).pvalue for t in times])
        else:
            flat = np.ptp(slopes, axis=1) == 0
            p_values[flat] = np.where(slopes[flat, 0] != 0, 0.0, 1.0)
            if (~flat).any():
                p_values[~flat] = stats.ttest_1samp(slopes[~flat], 0.0, axis=1).pvalue
        flagged = (p_values < TREND_ALPHA) & (drifts >= TREND_MIN_DRIFT)
        for i, value in zip(indices, flagged.tolist(), strict=True):
            out[i] = bool(value)
    return out

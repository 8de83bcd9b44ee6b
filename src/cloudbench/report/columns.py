"""Per-benchmark intervals of a group, for every benchmark column at once.

The same numbers as a one-column `stats.speedup_interval` (and the row-by-row mean in
tests/report/reference.py),
vectorised over columns: a 100-type run has 16 000 rows, and a few scipy calls per row
were most of a report's time.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from cloudbench.report.stats import (
    LEVEL,
    Array,
    Group,
    Interval,
    boot_means,
    log_boot_means,
    method_for,
    nanmean_cols,
    unit_means,
)


def percentile_columns(samples: Array) -> tuple[Array, Array]:
    """Per column: the central LEVEL quantiles of the finite replicates (NaN if none)."""
    alpha = (1 - LEVEL) / 2
    finite = np.isfinite(samples)
    if finite.all():
        low, high = np.quantile(samples, [alpha, 1 - alpha], axis=0)
        return low, high
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no interval
        low, high = np.nanquantile(np.where(finite, samples, np.nan), [alpha, 1 - alpha], axis=0)
    return low, high


def log_scores(group: Group) -> tuple[Array, Array, Array]:
    """Per column: log of the mean, its delta-method variance and its df (units - 1)."""
    means = nanmean_cols(group.values)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_unit = unit_means(group.values, group.units()) / means
        finite = np.isfinite(per_unit)
        n = finite.sum(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # columns with < 2 units
            var = np.nanvar(np.where(finite, per_unit, np.nan), axis=0, ddof=1) / n
        return np.log(means), np.where(n >= 2, var, np.nan), n - 1


def welch_columns(log_ratio: Array, parts: list[tuple[Array, Array]]) -> tuple[Array, Array, Array]:
    """(low, high, usable) of exp(log_ratio ± t·se) per column; see stats.welch_log_interval."""
    usable = np.ones(log_ratio.shape, dtype=bool)
    for var, df in parts:
        usable &= np.isfinite(var) & (df >= 1)
    variance = sum(np.where(usable, v, 0.0) for v, _ in parts)
    denominator = sum(np.where(usable & (v > 0), v**2 / np.maximum(d, 1), 0.0) for v, d in parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where(variance > 0, variance**2 / denominator, 1.0)
    half = np.where(variance > 0, stats.t.ppf(1 - (1 - LEVEL) / 2, df) * np.sqrt(variance), 0.0)
    return np.exp(log_ratio - half), np.exp(log_ratio + half), usable


def _intervals(estimates: Array, low: Array, high: Array, method: str) -> list[Interval]:
    out = []
    for e, lo, hi in zip(estimates.tolist(), low.tolist(), high.tolist(), strict=True):
        if math.isnan(lo) or math.isnan(hi):
            out.append(Interval(e, None, None, "none"))
        else:
            out.append(Interval(e, lo, hi, method))
    return out


def mean_intervals(group: Group) -> list[Interval]:
    """Per column: the mean of per-task values with its CI (seconds)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty columns are never reported
        estimates = np.nanmean(group.values, axis=0)
    method = method_for(group)
    nothing = np.full(estimates.shape, np.nan)
    if method == "bootstrap":
        return _intervals(estimates, *percentile_columns(boot_means(group)), method)
    if method == "none":
        return _intervals(estimates, nothing, nothing, method)
    log_mean, var, df = log_scores(group)
    # On the log scale (delta method), so a time's interval stays positive.
    low, high, usable = welch_columns(log_mean, [(var, df)])
    return _intervals(estimates, np.where(usable, low, np.nan), np.where(usable, high, np.nan), "t")


def speedup_intervals(base: Group, other: Group) -> list[Interval]:
    """Per column: base mean ÷ other mean with its CI (columns shared by both groups)."""
    columns = base.values.shape[1]
    if base is other:
        return [Interval(1.0, None, None, "reference")] * columns
    log_b, var_b, df_b = log_scores(base)
    log_o, var_o, df_o = log_scores(other)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimates = np.exp(log_b - log_o)
    method = method_for(base, other)
    nothing = np.full(columns, np.nan)
    if method == "bootstrap":
        with np.errstate(invalid="ignore", divide="ignore"):
            samples = np.exp(log_boot_means(base, cache=True) - log_boot_means(other))
        return _intervals(estimates, *percentile_columns(samples), method)
    if method == "none":
        return _intervals(estimates, nothing, nothing, method)
    low, high, usable = welch_columns(log_b - log_o, [(var_b, df_b), (var_o, df_o)])
    return _intervals(estimates, np.where(usable, low, np.nan), np.where(usable, high, np.nan), "t")

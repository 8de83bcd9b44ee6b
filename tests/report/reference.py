"""Row-by-row reference statistics the vectorised report code must equal (tests only)."""

from __future__ import annotations

import numpy as np

from cloudbench.report.stats import (
    Group,
    Interval,
    boot_means,
    log_geomean_score,
    method_for,
    percentile_interval,
    welch_log_interval,
)


def mean_interval(group: Group, column: int) -> Interval:
    """The mean of per-task values of one benchmark, with its CI (seconds), one column at
    a time: what columns.mean_intervals computes for every column at once."""
    values = group.values[:, column]
    estimate = float(np.nanmean(values))
    method = method_for(group)
    if method == "bootstrap":
        return percentile_interval(boot_means(group)[:, column], estimate)
    if method == "none":
        return Interval(estimate, None, None, "none")
    # On the log scale (delta method), so a time's interval stays positive.
    log_mean, variance, df = log_geomean_score(group, np.asarray([column]))
    interval = welch_log_interval(log_mean, [(variance, df)])
    return Interval(estimate, interval.ci_low, interval.ci_high, interval.method)

"""From per-task values to the per-benchmark rows of a report."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cloudbench.report.groups import Cell
from cloudbench.report.stats import Interval, mean_interval, outliers, speedup_interval
from cloudbench.report.variation import between_within_cv, cv, warmup_trend, within_process_cv


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def benchmark_rows(
    cells: dict[tuple[str, str], Cell], baseline: str, prices: dict[str, float | None]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(benchmarks rows, outlier flags) for every alias x executable x benchmark."""
    rows, flags = [], []
    for (alias, exe), cell in cells.items():
        base = cells.get((baseline, exe))
        for name in sorted(cell.completed()):
            row, outlier = _row(cell, base, name, prices.get(alias))
            rows.append(row)
            flags += [{"kind": "outlier", "alias": alias, "executable": exe, "benchmark": name,
                       "task_id": t} for t in outlier]  # fmt: skip
    return rows, flags


def _row(
    cell: Cell, base: Cell | None, name: str, usd_per_hour: float | None
) -> tuple[dict[str, Any], list[int]]:
    column = cell.column(name)
    values = cell.group.values[:, column]
    present = ~np.isnan(values)
    mean = mean_interval(cell.group, column)
    between, within = between_within_cv(values, cell.group.machines)
    speedup, rss_ratio = _versus(cell, base, name)
    maxrss = cell.maxrss[present, column]
    maxrss = maxrss[~np.isnan(maxrss)]
    row = {
        "name": name, "alias": cell.alias, "executable": cell.executable,
        "tasks": int(present.sum()),
        "machines": len(set(cell.group.machines[present].tolist())),
        "median_s": float(np.median(values[present])), "mean_s": mean.estimate,
        "ci_low_s": _num(mean.ci_low), "ci_high_s": _num(mean.ci_high), "ci_method": mean.method,
        "sd_s": _num(float(np.std(values[present], ddof=1)) if present.sum() > 1 else None),
        "cv": _num(cv(values)), "cv_between_machines": _num(between),
        "cv_within_machine": _num(within),
        "cv_within_process": _num(within_process_cv(cell.series(name))),
        "speedup": speedup.as_json() if speedup else None,
        "maxrss_bytes": int(np.median(maxrss)) if maxrss.size else None,
        "maxrss_ratio": rss_ratio,
        "warmup_trend": warmup_trend(cell.series(name)),
        "usd_per_iteration": None if usd_per_hour is None else mean.estimate * usd_per_hour / 3600,
    }  # fmt: skip
    flagged = outliers(values)
    return row, [cell.tasks[i].task_id for i in np.flatnonzero(flagged)]


def _versus(cell: Cell, base: Cell | None, name: str) -> tuple[Interval | None, float | None]:
    if base is None or name not in base.completed():
        return None, None
    columns = np.asarray([cell.column(name)])
    speedup = speedup_interval(base.group, cell.group, columns)
    mine, theirs = _median_rss(cell, name), _median_rss(base, name)
    ratio = mine / theirs if mine is not None and theirs else None
    return speedup, ratio


def _median_rss(cell: Cell, name: str) -> float | None:
    values = cell.maxrss[:, cell.column(name)]
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else None

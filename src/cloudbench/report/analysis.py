"""From per-task values to the per-benchmark rows of a report.

Every statistic is computed for all benchmark columns of a cell at once (see columns.py);
the loop over rows only assembles them.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from cloudbench.report.columns import mean_intervals, speedup_intervals
from cloudbench.report.groups import Cell
from cloudbench.report.stats import Array, Interval, outliers
from cloudbench.report.variation import spread_columns, warmup_trends, within_process_cvs


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def benchmark_rows(
    cells: dict[tuple[str, str], Cell], baseline: str, prices: dict[str, float | None]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(benchmarks rows, outlier flags) for every alias x executable x benchmark."""
    rows, flags = [], []
    for (alias, exe), cell in cells.items():
        base = cells.get((baseline, exe))
        cell_rows, flagged = _cell_rows(cell, base, prices.get(alias))
        rows += cell_rows
        flags += [
            {"kind": "outlier", "alias": alias, "executable": exe, "benchmark": name, "task_id": t}
            for name, t in flagged
        ]
    return rows, flags


def _median_rss(cell: Cell) -> Array:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a benchmark without maxrss: NaN
        return np.asarray(np.nanmedian(cell.maxrss, axis=0))


def _versus(cell: Cell, base: Cell | None) -> tuple[list[Interval | None], list[float | None]]:
    """Per column: speedup vs the baseline and maxrss ratio (None where it lacks the column)."""
    columns = len(cell.benchmarks)
    if base is None:
        return [None] * columns, [None] * columns
    done = base.completed()
    speedups = speedup_intervals(base.group, cell.group)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = (_median_rss(cell) / _median_rss(base)).tolist()
    return (
        [s if n in done else None for s, n in zip(speedups, cell.benchmarks, strict=True)],
        [
            r if n in done and math.isfinite(r) else None
            for r, n in zip(ratios, cell.benchmarks, strict=True)
        ],
    )


def _cell_rows(
    cell: Cell, base: Cell | None, usd_per_hour: float | None
) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    values = cell.group.values
    spread = {k: v.tolist() for k, v in spread_columns(values, cell.group.machines).items()}
    means = mean_intervals(cell.group)
    speedups, rss_ratios = _versus(cell, base)
    rss = _median_rss(cell).tolist()
    done = cell.completed()
    names = [n for n in cell.benchmarks if n in done]
    series = {n: cell.series(n) for n in names}
    trends = dict(zip(names, warmup_trends([series[n] for n in names]), strict=True))
    noise = dict(zip(names, within_process_cvs([series[n] for n in names]), strict=True))
    rows = []
    for name in names:
        j = cell.column(name)
        mean, speedup = means[j], speedups[j]
        rows.append(
            {
                "name": name,
                "alias": cell.alias,
                "executable": cell.executable,
                "tasks": int(spread["n"][j]),
                "machines": int(spread["machines"][j]),
                "median_s": spread["median"][j],
                "mean_s": mean.estimate,
                "ci_low_s": _num(mean.ci_low),
                "ci_high_s": _num(mean.ci_high),
                "ci_method": mean.method,
                "sd_s": _num(spread["sd"][j]),
                "cv": _num(spread["cv"][j]),
                "cv_between_machines": _num(spread["between"][j]),
                "cv_within_machine": _num(spread["within"][j]),
                "cv_within_process": _num(noise[name]),
                "speedup": speedup.as_json() if speedup else None,
                "maxrss_bytes": None if math.isnan(rss[j]) else int(rss[j]),
                "maxrss_ratio": rss_ratios[j],
                "warmup_trend": trends[name],
                "usd_per_iteration": None
                if usd_per_hour is None
                else mean.estimate * usd_per_hour / 3600,
            }
        )
    flagged = outliers(values)
    return rows, [
        (cell.benchmarks[j], cell.tasks[i].task_id)
        for j in range(len(cell.benchmarks))
        if cell.benchmarks[j] in series
        for i in np.flatnonzero(flagged[:, j])
    ]

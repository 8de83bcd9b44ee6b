"""The vectorised per-benchmark statistics give the row-by-row numbers; imports stay lazy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from numpy.typing import NDArray

from cloudbench.report.columns import mean_intervals, speedup_intervals
from cloudbench.report.stats import Group, Interval, outliers, speedup_interval
from cloudbench.report.variation import spread_columns, warmup_trends
from tests.report.reference import mean_interval


def _group(seed: int, machines: int, tasks_per: int, benchmarks: int = 6) -> Group:
    rng = np.random.default_rng(seed)
    n = machines * tasks_per
    values = rng.uniform(0.5, 2.0, size=benchmarks) * np.exp(rng.normal(0, 0.1, (n, benchmarks)))
    values[rng.random((n, benchmarks)) < 0.15] = np.nan  # some tasks lack some benchmarks
    values[:, -1] = np.nan
    values[0, -1] = 1.0  # one benchmark with a single value: no interval
    machine_ids: NDArray[np.int64] = np.repeat(np.arange(machines), tasks_per).astype(np.int64)
    return Group(values, machine_ids, seed)


def _same(a: Interval, b: Interval) -> None:
    assert a.method == b.method
    assert a.estimate == pytest.approx(b.estimate, rel=1e-12, nan_ok=True)
    for x, y in ((a.ci_low, b.ci_low), (a.ci_high, b.ci_high)):
        assert (x is None) == (y is None)
        if x is not None:
            assert x == pytest.approx(y, rel=1e-9)


@pytest.mark.parametrize(("machines", "tasks_per"), [(12, 2), (4, 3), (1, 5), (1, 1)])
def test_column_intervals_equal_the_row_versions(machines: int, tasks_per: int) -> None:
    base, other = _group(1, machines, tasks_per), _group(2, machines, tasks_per)
    means, speedups = mean_intervals(other), speedup_intervals(base, other)
    methods = set()
    for j in range(other.values.shape[1]):
        if np.all(np.isnan(other.values[:, j])):
            continue
        _same(means[j], mean_interval(other, j))
        _same(speedups[j], speedup_interval(base, other, np.asarray([j])))
        methods.add(speedups[j].method)
    assert methods  # something was compared
    assert speedup_intervals(base, base)[0] == Interval(1.0, None, None, "reference")


def test_spread_columns_by_hand() -> None:
    # Machine 0: 1, 3 (mean 2); machine 1: 5 (and a missing task); column 2 has one value.
    values = np.array(
        [[1.0, 2.0, np.nan], [3.0, 2.0, np.nan], [5.0, np.nan, 4.0], [np.nan, 2.0, np.nan]]
    )
    spread = spread_columns(values, np.array([0, 0, 1, 1]))
    assert spread["n"].tolist() == [3, 3, 1]
    assert spread["machines"].tolist() == [2, 2, 1]
    assert spread["mean"][0] == 3.0 and spread["median"][0] == 3.0
    assert spread["sd"][0] == pytest.approx(2.0)
    assert spread["between"][0] == pytest.approx(np.std([2.0, 5.0], ddof=1) / 3.0)
    assert spread["within"][0] == pytest.approx(np.sqrt(2.0) / 3.0)  # pooled: (1+1)/1 df
    assert spread["sd"][1] == 0.0 and spread["between"][1] == 0.0
    assert np.isnan(spread["sd"][2]) and np.isnan(spread["within"][2])


def test_outliers_per_column() -> None:
    # Column 0: ten quiet tasks and one far off; column 1: MAD 0; column 2: too few tasks.
    quiet = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.02, 0.98, 1.0]
    values = np.full((11, 3), np.nan)
    values[:, 0] = [*quiet, 9.0]
    values[:, 1] = [1.0] * 10 + [np.nan]
    values[:5, 2] = [1.0, 1.1, 0.9, 1.0, 9.0]
    flagged = outliers(values)
    assert flagged[:, 0].tolist() == [False] * 10 + [True]
    assert not flagged[:, 1].any()  # MAD 0: nothing to scale by, nothing flagged
    assert not flagged[:, 2].any()  # 5 tasks: fewer than MIN_OUTLIER_TASKS, not judged


def test_warmup_trends_batched() -> None:
    rising = [
        np.array(s)
        for s in ([1.0, 1.1, 1.2, 1.3], [1.0, 1.12, 1.19, 1.31], [1.0, 1.09, 1.22, 1.28])
    ]
    flat = [np.array([1.0, 1.01, 0.99, 1.0]), np.array([1.0, 0.99, 1.01, 1.0])]
    short = [np.array([1.0, 2.0])]
    assert warmup_trends([rising, flat, short, [rising[0]]]) == [True, False, None, True]


def test_cli_imports_no_statistics_or_charts() -> None:
    """`cloudbench --help` must not pay for numpy/scipy/plotly (seconds on a busy machine)."""
    heavy = "('numpy', 'scipy', 'plotly', 'jinja2')"
    code = f"import sys, cloudbench.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

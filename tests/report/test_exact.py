"""Statistics against hand-computed values on a small results folder.

Baseline `a` and `b`, two tasks each, each task on its own machine (2 machines → the
t method on the log scale, see docs/report.md). Per-task medians:

    fib    a: 2, 4 (mean 3)      b: 1, 2 (mean 1.5)  → speedup 2
    nbody  a: 1, 1 (mean 1)      b: .25, .25         → speedup 4
    geomean speedup of b = sqrt(2 · 4) = 2.828427

Geomean CI of b, delta method: each machine's score is the mean over benchmarks of its
value ÷ the benchmark mean: a → 5/6, 7/6; b → 5/6, 7/6. var(log G) = var(scores)/2 = 1/36
per group; se = sqrt(1/18) = 0.235702; Welch df = (1/18)² / (2 · (1/36)²) = 2;
t(0.975, 2) = 4.302653; half width = 1.014142 → 2.828427 · exp(-+1.014142).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from cloudbench.report import build_report
from tests.report.synth import SynthTask, write_run

T2 = 4.302652729749464  # scipy.stats.t.ppf(0.975, 2), as in tables
T1 = 12.706204736174707  # t.ppf(0.975, 1)


def _tasks() -> list[SynthTask]:
    def task(
        i: int, alias: str, fib: list[float], nbody: list[float], yjit: list[float]
    ) -> SynthTask:
        return SynthTask(
            i,
            alias,
            f"m{i}",
            {"interp": {"fib": fib, "nbody": nbody}, "yjit": {"fib": yjit, "nbody": nbody}},
            maxrss=(40 + i) << 20,
        )

    return [
        task(1, "a", [1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
        task(2, "a", [3.0, 4.0, 5.0], [1.0, 1.0, 1.0], [3.0, 3.0, 3.0]),
        task(3, "b", [1.0, 1.0, 1.0], [0.25, 0.25, 0.25], [0.5, 0.5, 0.5]),
        task(4, "b", [2.0, 2.0, 2.0], [0.25, 0.25, 0.25], [1.0, 1.0, 1.0]),
    ]


@pytest.fixture
def summary(tmp_path: Path) -> dict[str, Any]:
    run = write_run(tmp_path / "results", 7, _tasks())
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "provider,instance_type,region,usd_per_hour,source,date\n"
        "aws,a,,0.1,test,2026-11-01\naws,b,,0.4,test,2026-11-01\n"
    )
    report = build_report([run], prices_file=prices, offline=True)
    return dict(json.loads((report.out / "summary.json").read_text()))


def _row(summary: dict[str, Any], alias: str, exe: str, name: str) -> dict[str, Any]:
    return next(
        r
        for r in summary["benchmarks"]
        if (r["alias"], r["executable"], r["name"]) == (alias, exe, name)
    )


def test_per_benchmark_values(summary: dict[str, Any]) -> None:
    fib = _row(summary, "a", "interp", "fib")
    assert (fib["tasks"], fib["machines"]) == (2, 2)
    assert fib["mean_s"] == 3.0 and fib["median_s"] == 3.0
    assert fib["sd_s"] == pytest.approx(math.sqrt(2))
    assert fib["cv"] == pytest.approx(math.sqrt(2) / 3)
    # Machine scores 2/3, 4/3 → var/2 = 1/9, se 1/3, df 1: 3 · exp(-+ t1/3).
    assert fib["ci_low_s"] == pytest.approx(3 * math.exp(-T1 / 3), rel=1e-6)
    assert fib["ci_high_s"] == pytest.approx(3 * math.exp(T1 / 3), rel=1e-6)
    assert fib["speedup"] == {"estimate": 1.0, "ci_low": None, "ci_high": None}  # reference
    assert fib["maxrss_bytes"] == (41 << 20) + (1 << 19)  # median of 41 and 42 MiB
    # Slopes ÷ median 0.5 and 0.25: t = 3 with 1 df, p = 0.205 → not a trend.
    assert fib["warmup_trend"] is False
    b_fib = _row(summary, "b", "interp", "fib")
    # Ratio 3/1.5; var of log means 1/9 + 1/9, Welch df 2.
    half = T2 * math.sqrt(2 / 9)
    assert b_fib["speedup"]["estimate"] == pytest.approx(2.0)
    assert b_fib["speedup"]["ci_low"] == pytest.approx(2 * math.exp(-half), rel=1e-6)
    assert b_fib["speedup"]["ci_high"] == pytest.approx(2 * math.exp(half), rel=1e-6)
    assert b_fib["maxrss_ratio"] == pytest.approx(43.5 / 41.5)
    assert b_fib["usd_per_iteration"] == pytest.approx(1.5 * 0.4 / 3600)


def test_geomean_rank_price_and_yjit(summary: dict[str, Any]) -> None:
    by_alias = {t["alias"]: t for t in summary["instance_types"]}
    b = by_alias["b"]["by_executable"]["interp"]
    half = T2 * math.sqrt(1 / 18)
    root8 = math.sqrt(8)
    assert b["geomean_speedup"]["estimate"] == pytest.approx(root8)
    assert b["geomean_speedup"]["ci_low"] == pytest.approx(root8 * math.exp(-half), rel=1e-6)
    assert b["geomean_speedup"]["ci_high"] == pytest.approx(root8 * math.exp(half), rel=1e-6)
    assert b["rank"] == 1 and b["tied_with"] == []  # [1.026, 7.80] excludes the baseline's 1
    # Perf per dollar: speedup ÷ (0.4 / 0.1).
    assert b["perf_per_dollar"]["estimate"] == pytest.approx(root8 / 4)
    assert by_alias["a"]["by_executable"]["interp"]["geomean_speedup"]["estimate"] == 1.0
    # Headline is yjit: b's yjit medians 0.5,1 vs a's 1,3 on fib; nbody .25 vs 1.
    assert summary["headline_executable"] == "yjit"
    assert by_alias["b"]["geomean_speedup"]["estimate"] == pytest.approx(math.sqrt(2 / 0.75 * 4))
    # a's YJIT speedup: interp fib 2,4 vs yjit 1,3; nbody 1 vs 1 → sqrt(3/2 · 1).
    # Paired scores: fib (2/3 - 1/2, 4/3 - 3/2) = ±1/6, nbody 0 → per task ±1/12;
    # var/2 = (2/144)/2 = 1/144, se 1/12, df 1.
    yjit = by_alias["a"]["yjit_speedup"]
    assert yjit["estimate"] == pytest.approx(math.sqrt(1.5))
    assert yjit["ci_low"] == pytest.approx(math.sqrt(1.5) * math.exp(-T1 / 12), rel=1e-6)
    assert yjit["ci_high"] == pytest.approx(math.sqrt(1.5) * math.exp(T1 / 12), rel=1e-6)
    assert [t["alias"] for t in summary["instance_types"]] == ["b", "a"]
    assert by_alias["a"]["usd_per_hour"] == 0.1 and by_alias["a"]["price_source"] == "test"
    # a is the cheaper; b is faster by its estimate, but its yjit interval over a (the
    # headline pair) contains 1: not on the front, not dominated either.
    assert by_alias["a"]["pareto"] is True and by_alias["b"]["pareto"] is None
    assert by_alias["b"]["pareto_status"] == "undecided" and by_alias["b"]["tied_with"] == ["a"]
    assert summary["geomean_benchmarks"]["interp"] == ["fib", "nbody"]


def test_warmup_trend_is_null_below_three_iterations(tmp_path: Path) -> None:
    tasks = [SynthTask(i, "a", f"m{i}", {"interp": {"fib": [1.0, 1.1]}}) for i in (1, 2)]
    report = build_report([write_run(tmp_path, 1, tasks)], offline=True)
    assert report.summary["benchmarks"][0]["warmup_trend"] is None


def test_steady_drift_is_flagged(tmp_path: Path) -> None:
    # Every task slows down ~10% over its window: a warm-up problem, not noise.
    tasks = [
        SynthTask(i, "a", f"m{i}", {"interp": {"fib": [1.0, 1.05 + i / 1000, 1.1, 1.15]}})
        for i in (1, 2, 3)
    ]
    report = build_report([write_run(tmp_path, 1, tasks)], offline=True)
    assert report.summary["benchmarks"][0]["warmup_trend"] is True
    assert {"kind": "warmup_trend", "alias": "a", "executable": "interp", "benchmark": "fib"} in (
        report.summary["flags"]
    )

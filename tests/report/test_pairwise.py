"""Pairwise comparisons, rank probabilities, Pareto with intervals and the outlier rule.

Synthetic folders (tests/report/synth.py): every task on its own machine. The baseline
`base` is noisy (task effects with SD ~0.2); `x` and `y` are quiet and differ by 20 %.
Against the baseline both intervals contain 1 and overlap each other, yet `y` is clearly
faster than `x`: a pairwise interval must say so (issue 24).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudbench.report import build_report, charts
from tests.report.synth import SynthTask, write_run

NOISY = [0.7, 1.3, 0.8, 1.2, 0.9, 1.1, 0.75, 1.25, 0.85, 1.15]
QUIET = [0.99, 1.01, 0.995, 1.005, 1.0, 0.998, 1.002, 0.997, 1.003, 1.0]
SPEED = {"base": (1.1, NOISY), "x": (1.0, QUIET), "y": (1.2, QUIET), "z": (0.8, QUIET)}


def _run(root: Path, n: int, aliases: tuple[str, ...] = ("base", "x", "y")) -> Path:
    tasks, i = [], 1
    for alias in aliases:
        speed, effects = SPEED[alias]
        for k in range(n):
            t = effects[k] / speed
            bench = {"interp": {"fib": [t] * 3, "nbody": [2 * t] * 3}}
            tasks.append(SynthTask(i, alias, f"{alias}-m{k}", bench))
            i += 1
    return write_run(root, 1, tasks)


def _prices(root: Path) -> Path:
    path = root / "prices.csv"
    path.write_text(
        "provider,instance_type,region,usd_per_hour,source,date\n"
        "aws,x,,0.1,t,2026-11-01\naws,base,,0.2,t,2026-11-01\n"
        "aws,y,,0.3,t,2026-11-01\naws,z,,0.4,t,2026-11-01\n"
    )
    return path


@pytest.mark.parametrize("n", [4, 10])  # the t method (2..9 units) and the bootstrap
def test_clearly_different_types_are_not_tied_though_both_overlap_the_baseline(
    tmp_path: Path, n: int
) -> None:
    summary = build_report([_run(tmp_path, n)], offline=True).summary
    by = {t["alias"]: t for t in summary["instance_types"]}
    assert by["x"]["ci_method"] == by["y"]["ci_method"] == ("bootstrap" if n == 10 else "t")
    # Both contain 1 against the noisy baseline ...
    for alias in ("x", "y"):
        speed = by[alias]["geomean_speedup"]
        assert speed["ci_low"] < 1 < speed["ci_high"], speed
        assert "base" in by[alias]["tied_with"]
    # ... and their baseline-relative intervals overlap, yet y vs x excludes 1.
    assert by["y"]["geomean_speedup"]["ci_low"] < by["x"]["geomean_speedup"]["ci_high"]
    assert "x" not in by["y"]["tied_with"] and "y" not in by["x"]["tied_with"]
    pair = next(p for p in summary["pairwise"]["interp"]["pairs"] if {p["a"], p["b"]} == {"x", "y"})
    assert pair["a"] == "y" and pair["tied"] is False
    assert pair["ratio"]["estimate"] == pytest.approx(1.2)
    assert 1.15 < pair["ratio"]["ci_low"] < 1.2 < pair["ratio"]["ci_high"] < 1.25
    # The baseline is the reference: no interval, no "[1.000, 1.000] exact".
    assert by["base"]["reference"] is True and by["x"]["reference"] is False
    assert by["base"]["geomean_speedup"] == {"estimate": 1.0, "ci_low": None, "ci_high": None}
    assert by["base"]["by_executable"]["interp"]["ci_method"] == "reference"
    base_row = next(r for r in summary["benchmarks"] if r["alias"] == "base")
    assert base_row["speedup"] == {"estimate": 1.0, "ci_low": None, "ci_high": None}
    # Probabilities from the same replicates: y is almost surely faster than x.
    probs = {a: by[a]["prob_fastest"] for a in by}
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs["x"] < 0.05 and probs["y"] > 0.5
    assert by["y"]["rank_interval"][0] == 1 and by["x"]["rank_interval"][1] == 3
    assert summary["pairwise"]["interp"]["method"] == by["x"]["ci_method"]


def test_pairwise_replicates_are_reproducible_from_the_recorded_seed(tmp_path: Path) -> None:
    run = _run(tmp_path, 10)
    first = build_report([run], offline=True, out=tmp_path / "r1").summary
    again = build_report([run], offline=True, out=tmp_path / "r2", seed=first["seed"]).summary
    other = build_report([run], offline=True, out=tmp_path / "r3", seed=7).summary
    assert first["pairwise"] == again["pairwise"]
    assert first["pairwise"] != other["pairwise"]


def test_pareto_front_needs_clear_intervals(tmp_path: Path) -> None:
    run = _run(tmp_path, 10, ("base", "x", "y", "z"))
    summary = build_report([run], prices_file=_prices(tmp_path), offline=True).summary
    by = {t["alias"]: t for t in summary["instance_types"]}
    # x is the cheapest: nothing cheaper can beat it.
    assert by["x"]["pareto"] is True and by["x"]["pareto_status"] == "front"
    # y is clearly faster than x but tied with the cheaper baseline: not shown as on the front.
    assert by["y"]["pareto"] is None and by["y"]["pareto_status"] == "undecided"
    # z costs most and is clearly slower than x: dominated.
    assert by["z"]["pareto"] is False and by["z"]["pareto_status"] == "dominated"
    assert by["y"]["prob_best_per_dollar"] is not None
    assert sum(t["prob_best_per_dollar"] for t in by.values()) == pytest.approx(1.0)
    assert by["x"]["prob_best_per_dollar"] > 0.9
    # The chart draws each point with its interval (the reference has none).
    figure = charts.pareto(summary)
    assert figure is not None
    points = figure["data"][0]
    bars = dict(zip(points["text"], points["error_y"]["arrayminus"], strict=True))
    assert bars["base"] == 0 and bars["y"] > 0.05
    assert [t["alias"] for t in summary["instance_types"] if t["pareto"]] == ["x"]


def test_outliers_need_enough_tasks(tmp_path: Path) -> None:
    # Three tasks: one 30 % slower is not "an outlier" (the MAD of 3 values is noise).
    few = [
        SynthTask(i, "a", f"m{i}", {"interp": {"fib": [t] * 3}})
        for i, t in enumerate([1.0, 1.02, 1.3], start=1)
    ]
    summary = build_report([write_run(tmp_path, 1, few)], offline=True).summary
    assert not [f for f in summary["flags"] if f["kind"] == "outlier"]
    assert summary["outlier_rule"]["min_tasks"] >= 10
    # Twelve quiet tasks and one three times slower: flagged.
    times = [1.0 + 0.01 * (k % 5) for k in range(12)] + [3.0]
    many = [
        SynthTask(i, "a", f"n{i}", {"interp": {"fib": [t] * 3}})
        for i, t in enumerate(times, start=1)
    ]
    summary = build_report([write_run(tmp_path, 2, many)], offline=True).summary
    flagged = [f for f in summary["flags"] if f["kind"] == "outlier"]
    assert [f["task_id"] for f in flagged] == [13]

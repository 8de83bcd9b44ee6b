"""Which benchmarks the geomean runs over, prices in the run's region, the cost ledger."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudbench.protocol import CostEntry, CostLedger
from cloudbench.report import build_report
from tests.report.synth import SynthTask, write_run

# a → b per-task values: fib 2 → 1 (speedup 2), nbody 1 → 0.5 (2), strings 1 → 0.125 (8).
TIMES = {
    "a": {"fib": 2.0, "nbody": 1.0, "strings": 1.0},
    "b": {"fib": 1.0, "nbody": 0.5, "strings": 0.125},
}
CATEGORIES = {"fib": "headline", "nbody": "headline", "strings": "micro", "other": "other"}


def _run(root: Path, metadata: dict[str, dict[str, Any]], run_id: int = 1) -> Path:
    tasks = []
    for i, (alias, times) in enumerate(sorted(TIMES.items()) * 2, start=1):
        bench = {name: [t * (1 + 0.01 * i)] * 3 for name, t in times.items()}
        tasks.append(
            SynthTask(
                i,
                alias,
                f"m{i}",
                {"interp": bench, "yjit": bench},
                metadata=metadata.get(alias, {}),
            )
        )
    return write_run(root, run_id, tasks)


def _summary(run: Path, **kwargs: Any) -> dict[str, Any]:
    report = build_report([run], offline=True, **kwargs)
    return dict(json.loads((report.out / "summary.json").read_text()))


def _by_alias(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["alias"]: t for t in summary["instance_types"]}


def test_geomean_runs_over_headline_benchmarks_when_recorded(tmp_path: Path) -> None:
    recorded = {"benchmark_categories": CATEGORIES}
    summary = _summary(_run(tmp_path / "results", {"a": recorded, "b": recorded}))
    assert summary["geomean_benchmarks"] == {"interp": ["fib", "nbody"], "yjit": ["fib", "nbody"]}
    assert summary["geomean_category"] == {"interp": "headline", "yjit": "headline"}
    assert summary["benchmark_categories"] == CATEGORIES
    # Tasks differ by 1 % per task id, so the speedup is 2 within a few percent, not 8^(1/3).
    assert math.isclose(_by_alias(summary)["b"]["geomean_speedup"]["estimate"], 2, rel_tol=0.03)
    assert {r["name"] for r in summary["benchmarks"]} == {"fib", "nbody", "strings"}
    md = (tmp_path / "results" / "1" / "report" / "summary.md").read_text()
    assert "geomean over the 2 headline benchmarks every compared type ran" in md
    html = (tmp_path / "results" / "1" / "report" / "index.html").read_text()
    assert "the 2 headline benchmarks every compared type ran" in html


def test_old_results_without_categories_use_every_benchmark(tmp_path: Path) -> None:
    summary = _summary(_run(tmp_path / "results", {}))
    assert summary["geomean_benchmarks"]["yjit"] == ["fib", "nbody", "strings"]
    assert summary["geomean_category"] == {"interp": None, "yjit": None}
    assert summary["benchmark_categories"] == {}
    speedup = _by_alias(summary)["b"]["geomean_speedup"]["estimate"]
    assert math.isclose(speedup, (2 * 2 * 8) ** (1 / 3), rel_tol=0.03)
    md = (tmp_path / "results" / "1" / "report" / "summary.md").read_text()
    assert "all 3 benchmarks every compared type ran (categories not recorded)" in md


def test_aws_price_is_the_one_for_the_runs_region(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "provider,instance_type,region,usd_per_hour,source,date\n"
        "aws,a,us-east-1,0.10,file,2026-11-01\naws,a,eu-west-1,0.12,file,2026-11-01\n"
        "aws,b,eu-west-1,0.30,file,2026-11-01\n"
    )
    metadata = {"a": {"instance": {"provider": "aws", "region": "eu-west-1"}}}
    summary = _summary(_run(tmp_path / "results", metadata), prices_file=prices)
    a, b = _by_alias(summary)["a"], _by_alias(summary)["b"]
    assert (a["usd_per_hour"], a["region"], a["price_note"]) == (0.12, "eu-west-1", None)
    # b's metadata names no region: its eu-west-1 row is not used, nothing is guessed.
    assert (b["usd_per_hour"], b["region"]) == (None, None)
    assert b["price_note"] == "no price (region unknown)" and b["perf_per_dollar"] is None
    md = (tmp_path / "results" / "1" / "report" / "summary.md").read_text()
    assert "no price (region unknown)" in md


def _ledger(run: Path, entries: list[tuple[str, float, float | None]]) -> None:
    at = datetime(2026, 11, 27, 10, tzinfo=UTC)
    items = [
        CostEntry(
            provider="aws",
            instance_type=alias,
            alias=alias,
            vms=1,
            launched_at=at,
            terminated_at=at,
            instance_hours=hours,
            usd_per_hour=price,
            usd=None if price is None else hours * price,
        )
        for alias, hours, price in entries
    ]
    unpriced = [f"aws/{e.instance_type}" for e in items if e.usd is None]
    ledger = CostLedger(
        run_id=int(run.name),
        entries=items,
        unpriced=unpriced,
        total_usd=sum(e.usd or 0.0 for e in items),
    )
    (run / "cost-ledger.json").write_text(json.dumps(ledger.model_dump(mode="json")))


def test_cost_ledger_per_type_summed_over_runs(tmp_path: Path) -> None:
    first, second = _run(tmp_path / "r", {}, run_id=1), _run(tmp_path / "r", {}, run_id=2)
    _ledger(first, [("a", 0.5, 0.1), ("b", 0.25, None)])
    _ledger(second, [("a", 1.0, 0.1), ("b", 0.5, 0.4)])
    report = build_report([first, second], offline=True, out=tmp_path / "out")
    summary = json.loads((report.out / "summary.json").read_text())
    a, b = _by_alias(summary)["a"], _by_alias(summary)["b"]
    assert a["cost"]["instance_hours"] == 1.5 and math.isclose(a["cost"]["usd"], 0.15)
    assert b["cost"]["instance_hours"] == 0.75 and b["cost"]["usd"] is None  # one unpriced share
    assert summary["cost_ledger"]["runs"] == [1, 2]
    assert math.isclose(summary["cost_ledger"]["total_usd"], 0.05 + 0.1 + 0.2)
    assert summary["cost_ledger"]["unpriced"] == ["aws/b"]
    html = (tmp_path / "out" / "index.html").read_text()
    assert 'id="cost"' in html and "1.500" in html
    assert "| a | 2 | 1.500 | 0.15 |" in (tmp_path / "out" / "summary.md").read_text()


def test_the_meta_deployment_share_is_in_the_total_and_said(tmp_path: Path) -> None:
    run = _run(tmp_path / "r", {}, run_id=3)
    _ledger(run, [("a", 1.0, 0.1)])
    ledger = json.loads((run / "cost-ledger.json").read_text())
    ledger["meta"] = {"hours": 2.0, "usd_per_hour": 0.05, "usd": 0.1}
    ledger["total_usd"] = 0.2
    (run / "cost-ledger.json").write_text(json.dumps(ledger))
    report = build_report([run], offline=True, out=tmp_path / "out")
    summary = json.loads((report.out / "summary.json").read_text())
    assert math.isclose(summary["cost_ledger"]["total_usd"], 0.2)
    assert math.isclose(summary["cost_ledger"]["meta_usd"], 0.1)
    assert _by_alias(summary)["a"]["cost"]["usd"] == 0.1  # the type's own share only
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "Run cost (cost ledger): 0.20 USD priced (of which 0.10 USD the AWS meta" in md
    html = (tmp_path / "out" / "index.html").read_text()
    assert "of which 0.10 USD for the AWS meta deployment" in html


def test_without_a_ledger_no_cost_and_a_damaged_one_keeps_the_report(tmp_path: Path) -> None:
    run = _run(tmp_path / "results", {})
    summary = _summary(run)
    assert summary["cost_ledger"] is None and _by_alias(summary)["a"]["cost"] is None
    (run / "cost-ledger.json").write_text("{not json")
    summary = _summary(run)
    assert summary["cost_ledger"]["runs"] == [] and summary["cost_ledger"]["total_usd"] is None
    assert "unreadable cost ledger" in summary["cost_ledger"]["problems"][0]
    assert summary["instance_types"][0]["geomean_speedup"] is not None

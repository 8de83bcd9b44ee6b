"""`cloudbench run config/local.json` ends with a report (real master, runners, fake suite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.master.conftest import (  # noqa: F401  (harness is the fixture)
    ROOT,
    Harness,
    harness,
    last_json,
    needs_ruby,
)

pytestmark = [needs_ruby, pytest.mark.slow]


def _checks(run: Path, err: str) -> str:
    """Why a task may be missing from the report: the master's warnings and each task's
    checks (a process pinned to a task's CPUs fails own_core and excludes the task)."""
    checks = {
        p.parent.name: json.loads(p.read_text()).get("checks") for p in run.glob("*/metadata.json")
    }
    return f"{err}\ntasks' checks: {checks}"


def _every_task_disturbed(run: Path, err: str) -> bool:
    """CI runs tests side by side on two cores: another test's pinned process (a twin VM's
    benchmark, say) may run on a task's CPU, seen from /proc. When that happened to every
    task, all are excluded: no report, and the master says why, never labels one clean."""
    metas = [json.loads(p.read_text()) for p in run.glob("*/metadata.json")]
    assert metas, err
    if any(m["checks"]["own_core"] is not False for m in metas):
        return False
    for meta in metas:
        slot = meta["slot"]
        assert slot["seen_on_cpus"]["pinned"] or slot["concurrent"], slot
    assert "no report: " in err and "every task failed or was excluded" in err, err
    return True


def test_local_run_ends_with_a_report(harness: Harness) -> None:  # noqa: F811
    config = json.loads((ROOT / "config" / "local.json").read_text())
    config["ruby_version"] = "system"  # whatever Ruby this machine has, as the suite's tests
    prices = harness.tmp / "prices.csv"
    prices.write_text(
        "provider,instance_type,region,usd_per_hour,source,date\n"
        "local,local,,0.05,test price,2026-11-30\n"
    )
    harness.start(harness.config(config), "--prices", str(prices), "--yes")
    code, out, err = harness.wait(timeout=240)
    assert code == 0, err
    run_id = last_json(out)["run_id"]
    report = harness.results / str(run_id) / "report"
    if _every_task_disturbed(harness.results / str(run_id), err):
        return
    summary = json.loads((report / "summary.json").read_text())
    entry = summary["instance_types"][0]
    assert entry["alias"] == "this-machine" and entry["usd_per_hour"] == 0.05
    assert entry["yjit_speedup"] is not None  # interp and yjit ran in the same tasks
    assert {b["name"] for b in summary["benchmarks"]} == {"fib", "nbody"}
    metas = [
        json.loads(p.read_text()) for p in (harness.results / str(run_id)).glob("*/metadata.json")
    ]
    disturbed = [m for m in metas if m["checks"]["own_core"] is False]
    if not disturbed:
        assert "local runners on one machine are one machine" in entry["notes"], _checks(
            harness.results / str(run_id), err
        )
    else:
        # CI runs tests side by side on two cores: another test's runner, pinned to this
        # task's CPU, ran there (seen from /proc). The report must exclude the task and say
        # why, never label it clean.
        assert all(m["slot"]["seen_on_cpus"]["pinned"] for m in disturbed), disturbed
        reasons = [str(e["reason"]) for e in summary["excluded"]]
        assert len(reasons) == len(disturbed) and all("own_core" in r for r in reasons), reasons
    assert (report / "index.html").stat().st_size > 1_000_000  # plotly.js inlined
    assert "ranking vs this-machine" in out and "0.0500" in out
    # The runner recorded the suite's categories (tests/fake_ruby_bench/benchmarks.yml) and
    # the geomean ran over its headline benchmarks, as the report says.
    metadata = json.loads(next((harness.results / str(run_id)).glob("*/metadata.json")).read_text())
    assert metadata["benchmark_categories"]["fib"] == "headline"
    assert metadata["benchmark_categories"]["strings"] == "micro"
    assert summary["geomean_category"] == {"interp": "headline", "yjit": "headline"}
    assert "the 2 headline benchmarks every compared type ran" in out


def test_without_prices_the_report_says_so(harness: Harness) -> None:  # noqa: F811
    config = json.loads((ROOT / "config" / "local.json").read_text())
    config |= {"ruby_version": "system", "per_instance_type": {"tasks": 1, "instances": 1}}
    config["benchmarks"] |= {"names": ["fib"], "bench_iterations": 3}
    harness.start(harness.config(config), "--yes")
    code, out, err = harness.wait(timeout=240)
    assert code == 0, err
    run_id = last_json(out)["run_id"]
    run = harness.results / str(run_id)
    if _every_task_disturbed(run, err):
        return
    assert "no price for any instance type" in out, _checks(run, err)
    md = (run / "report" / "summary.md").read_text()
    assert "no price" in md

"""`cloudbench report` on real fixtures, old formats, exclusions and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from cloudbench.report import build_report
from tests.report.synth import SynthTask, write_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ruby-bench"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudbench", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_real_ruby_bench_output_folder(tmp_path: Path) -> None:
    """A bare ruby-bench output folder (real output, no manifest) is one task."""
    folder = tmp_path / "fixture"
    folder.mkdir()
    shutil.copy(FIXTURES / "output_001.json", folder / "output_001.json")
    report = build_report([folder], offline=True)
    names = {r["name"] for r in report.summary["benchmarks"]}
    assert {"fib", "nbody"} <= names
    entry = report.summary["instance_types"][0]
    assert entry["yjit_speedup"]["estimate"] > 0 and entry["yjit_ci_method"] == "none"
    assert report.summary["ruby_version"] == "3.1.2p20"


def test_exclusions_checks_failed_tasks_and_benchmarks(tmp_path: Path) -> None:
    tasks = [
        SynthTask(1, "a", "m1", {"interp": {"fib": [1.0, 1.0, 1.0]}}),
        SynthTask(
            2,
            "a",
            "m2",
            {"interp": {"fib": [9.0, 9.0, 9.0]}},
            metadata={"checks": {"aslr_disabled": False, "steal_pct": 0.1}},
        ),
        SynthTask(
            3,
            "a",
            "m3",
            {"interp": {"fib": [2.0, 2.0, 2.0]}},
            metadata={
                "checks": {"aslr_disabled": True},
                "failed_benchmarks": {"interp": ["erubi"]},
            },
            status="failed",
            error={"type": "benchmark_failed", "message": "erubi"},
        ),
        SynthTask(
            4,
            "a",
            "m4",
            {"interp": {"fib": [5.0]}},
            status="failed",
            error={"type": "timeout", "message": "no heartbeat"},
        ),
    ]
    report = build_report([write_run(tmp_path, 3, tasks)], offline=True)
    excluded = {e["task_id"]: e["reason"] for e in report.summary["excluded"]}
    assert excluded[2] == "checks failed: aslr_disabled"
    assert excluded[4].startswith("task failed: timeout")
    assert excluded[3] == "benchmark erubi failed (interp)"
    fib = report.summary["benchmarks"][0]
    assert fib["tasks"] == 2 and fib["mean_s"] == 1.5  # tasks 1 and 3 only
    html = report.index.read_text()
    assert "checks failed: aslr_disabled" in html and "no price" in html


def test_mixed_runs_refused_unless_allowed(tmp_path: Path) -> None:
    one = write_run(tmp_path, 1, [SynthTask(1, "a", "m1", {"interp": {"fib": [1.0] * 3}})])
    two = write_run(
        tmp_path,
        2,
        [
            SynthTask(
                1, "b", "m2", {"interp": {"fib": [1.0] * 3}}, metadata={"ruby_bench_commit": "abc"}
            )
        ],
    )
    done = _cli(str(one), str(two), "--offline", "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "ruby-bench commit differs" in done.stderr and "--allow-mixed" in done.stderr
    assert "Traceback" not in done.stderr
    done = _cli(str(one), str(two), "--offline", "--allow-mixed", "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["mixed"] and [t["alias"] for t in summary["instance_types"]] == ["a", "b"]


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    run = write_run(tmp_path, 1, [SynthTask(1, "a", "m1", {"interp": {"fib": [1.0] * 3}})])
    bad = tmp_path / "p.csv"
    bad.write_text("provider,instance_type,region,usd_per_hour\naws,a,,free\n")
    for args, needle in [
        ((str(run), "--prices", str(bad)), "usd_per_hour 'free' is not a number"),
        ((str(run), "--baseline", "zzz"), "--baseline zzz: no such alias"),
        ((str(tmp_path / "missing"),), "not a directory"),
    ]:
        done = _cli(*args, "--offline")
        assert done.returncode == 2 and needle in done.stderr, done.stderr
        assert "Traceback" not in done.stderr

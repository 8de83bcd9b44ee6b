"""The report across the Ruby matrix: the headline column, each JIT over interp of the same
Ruby, each Ruby over the oldest Ruby with the same executable — paired within tasks."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cloudbench.report.build import build_report
from cloudbench.report.errors import ReportInputError
from tests.report.synth import SynthTask, write_run

# Seconds per iteration on type "a"; "b" is 2x slower everywhere. Ratios are exact.
TIMES = {"interp@3.4": 1.0, "yjit@3.4": 0.5, "interp@4.0": 0.9, "yjit@4.0": 0.4, "zjit@4.0": 0.45}


def _exes() -> dict[str, Any]:
    out = {}
    for label in TIMES:
        name, ruby = label.split("@")
        out[label] = {"ruby_version": ruby, "name": name, "jit": name, "options": []}
    return out


def _run(tmp_path: Path) -> Path:
    tasks = []
    for i, (alias, factor) in enumerate([("a", 1.0), ("b", 2.0)] * 3):
        noise = 1.0 + 0.01 * i  # a task's drift falls on every column alike (paired)
        bench = {
            label: {
                n: [t * factor * noise * s for s in (1.0, 1.01, 0.99)] for n in ("fib", "loops")
            }
            for label, t in TIMES.items()
        }
        code = {"inline_code_size": 1000 * (i + 1), "outlined_code_size": 10}
        memory = {
            "yjit@4.0": {
                "benchmarks": {
                    "fib": {"jit_code": code},
                    "loops": {"jit_code": {"inline_code_size": 5}},
                }
            }
        }
        meta = {
            "format_version": 5,
            "memory": memory,
            "ruby": {"ruby_versions": ["3.4", "4.0"], "executables": _exes()},
            "checks": {"executables_verified": True},
        }
        tasks.append(SynthTask(i + 1, alias, f"m-{alias}-{i}", bench, metadata=meta))
    return write_run(tmp_path / "results", 1, tasks)


def _close(value: float, expected: float) -> bool:
    return abs(value - expected) < 1e-9


def test_matrix_speedups_and_default_headline(tmp_path: Path) -> None:
    summary = build_report([_run(tmp_path)], offline=True).summary
    assert summary["format_version"] == 4
    matrix = summary["matrix"]
    assert matrix["rubies"] == ["3.4", "4.0"]
    # Newest Ruby's fastest verified JIT: yjit@4.0 (0.4 s) beats zjit@4.0 (0.45 s).
    assert summary["headline_executable"] == matrix["headline"] == "yjit@4.0"
    assert "default" in summary["headline_chosen"]
    for alias in ("a", "b"):
        jit = matrix["jit_speedups"][alias]
        assert set(jit) == {"yjit@3.4", "yjit@4.0", "zjit@4.0"}
        assert jit["zjit@4.0"]["vs"] == "interp@4.0"
        assert _close(jit["zjit@4.0"]["speedup"]["estimate"], 0.9 / 0.45)
        assert _close(jit["yjit@3.4"]["speedup"]["estimate"], 2.0)
        assert jit["yjit@3.4"]["paired_tasks"] == 3
        ruby = matrix["ruby_speedups"][alias]
        assert set(ruby) == {"interp@4.0", "yjit@4.0"}  # zjit has no older Ruby to compare
        assert ruby["yjit@4.0"]["vs"] == "yjit@3.4"
        assert _close(ruby["yjit@4.0"]["speedup"]["estimate"], 0.5 / 0.4)
        assert _close(ruby["interp@4.0"]["speedup"]["estimate"], 1.0 / 0.9)
    memory = matrix["memory"]["a"]["zjit@4.0"]
    assert memory["peak_rss_bytes"] == 50 << 20 and memory["vs"] == "interp@4.0"
    assert memory["rss_overhead_vs_interp"] == 1.0
    assert matrix["memory"]["a"]["interp@3.4"]["rss_overhead_vs_interp"] is None
    # Type a ran tasks 1, 3, 5 (inline code 1000, 3000, 5000): the median task's.
    assert matrix["memory"]["a"]["yjit@4.0"]["jit_code_bytes"] == {
        "inline_code_size": 3000.0,
        "outlined_code_size": 10.0,
    }
    assert memory["jit_code_bytes"] == {}
    # Type b is 2x slower than the baseline a on the headline column (unpaired: the
    # tasks' drift differs, so about 0.5).
    b = next(e for e in summary["instance_types"] if e["alias"] == "b")
    assert abs(b["geomean_speedup"]["estimate"] - 0.5) < 0.01


def test_headline_flag(tmp_path: Path) -> None:
    run = _run(tmp_path)
    summary = build_report([run], offline=True, headline="4.0/zjit").summary
    assert summary["headline_executable"] == "zjit@4.0"
    assert summary["headline_chosen"] == "--headline"
    with pytest.raises(ReportInputError, match=r"--headline 5\.0/zjit: no such column; choose"):
        build_report([run], offline=True, headline="5.0/zjit", out=tmp_path / "x")


def test_old_results_keep_yjit_and_get_its_speedup_over_interp(tmp_path: Path) -> None:
    tasks = [
        SynthTask(
            i + 1, "a", f"m{i}", {"interp": {"fib": [1.0, 1.0]}, "yjit": {"fib": [0.25, 0.25]}}
        )
        for i in range(2)
    ]
    summary = build_report([write_run(tmp_path / "r", 1, tasks)], offline=True).summary
    # Format-1 metadata has no checks: no JIT is verified, so the rule from before (yjit).
    assert summary["headline_executable"] == "yjit"
    assert "no verified JIT" in summary["headline_chosen"]
    matrix = summary["matrix"]
    assert _close(matrix["jit_speedups"]["a"]["yjit"]["speedup"]["estimate"], 4.0)
    assert matrix["ruby_speedups"] == {}


def test_against_compares_the_headline_column(tmp_path: Path) -> None:
    """--against between two matrix runs compares the headline column (yjit@4.0), not the
    first label both runs share (interp@3.4)."""
    old = _run(tmp_path / "old")
    new = _run(tmp_path / "new")
    summary = build_report([new], offline=True, against=[old]).summary
    comparison = summary["comparison"]
    assert comparison["executable"] == summary["headline_executable"] == "yjit@4.0"
    assert {t["alias"] for t in comparison["types"]} == {"a", "b"}
    assert all(t["verdict"] == "same" for t in comparison["types"])  # the same times
    wanted = build_report([new], offline=True, against=[old], headline="3.4/interp").summary
    assert wanted["comparison"]["executable"] == "interp@3.4"


def test_cli_prints_the_default_headline_and_each_ratio_with_its_interval(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path)
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "cloudbench", "report", str(run), "--offline", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "headline: yjit@4.0 (default: Ruby 4.0's fastest verified JIT)" in lines
    # zjit@4.0 is 0.9 / 0.45 = 2x interp@4.0 in every task: +100 %, a paired interval.
    assert "a: zjit@4.0 vs interp@4.0 +100.0 % [+100.0, +100.0]" in lines
    assert "b: yjit@4.0 vs yjit@3.4 +25.0 % [+25.0, +25.0]" in lines
    # summary.csv: a row per type x column x benchmark, every (Ruby, executable).
    with (out / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    seen = {(r["alias"], r["executable"], r["name"]) for r in rows}
    assert seen == {(a, e, b) for a in "ab" for e in TIMES for b in ("fib", "loops")}
    md = (out / "summary.md").read_text()
    assert "| a | zjit@4.0 | interp@4.0 | +100.0 % [+100.0, +100.0] |" in md
    # The page: the ratios with intervals, and every column's ranking a click away.
    page = (out / "index.html").read_text()
    section = page[page.index('id="matrix"') : page.index('id="grid-section"')]
    assert "+100.0 % [+100.0, +100.0]" in section and "interp@4.0" in section
    rankings = section[section.index('id="matrix-rankings"') :]
    assert all(f">{label}" in rankings for label in TIMES)
    assert rankings.count("rank 2") == len(TIMES)  # b is second on every column
    memory = section[section.index('id="matrix-memory"') :]
    assert "inline_code_size 3000; outlined_code_size 10" in memory  # a's median task
    assert "vs interp@4.0" in memory and "50.0" in memory

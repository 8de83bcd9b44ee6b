"""`cloudbench run` with the Ruby matrix on the local provider (host executor, fake suite).

Two Ruby versions need two Rubies, and only Debian's Ruby 3.1 exists here: Rubies 3.4.1
and 4.0.1 are FAKE RUBIES (tests/runner/fake_rubies.py: the host's Ruby claiming those
versions, and saying "fake ruby for tests" in RUBY_DESCRIPTION).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.master.conftest import Harness, last_json, needs_ruby
from tests.runner.fake_rubies import fake_ruby

pytestmark = [needs_ruby, pytest.mark.slow]

CONFIG: dict[str, Any] = {
    "ruby_versions": ["3.4", "4.0"],
    "per_instance_type": {"tasks": 1},
    "local": [
        {"instance_type": "local-a", "alias": "a", "tasks": 2},
        {"instance_type": "local-b", "alias": "b"},
    ],
    "benchmarks": {
        "names": ["fib", "loops"],
        "executables": [
            "interp",
            {"name": "yjit-64m", "jit": "yjit", "options": ["--yjit-exec-mem-size=64"]},
        ],
        "warmup_iterations": 0,
        "bench_iterations": 1,
    },
}


def test_dry_run_lists_tasks_per_type_and_ruby(harness: Harness) -> None:
    path = harness.config(CONFIG)
    result = harness.cli("run", str(path), "--dry-run", "--state-dir", str(harness.state))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    a = next(i for i, ln in enumerate(lines) if ln.startswith("local  local-a"))
    # 2 tasks x 480 s on one VM: 0.27 benchmark hours, half of them each Ruby's.
    assert lines[a + 1 : a + 3] == [
        "         Ruby 3.4: 2 task(s), 0.13 inst-h, -",
        "         Ruby 4.0: 2 task(s), 0.13 inst-h, -",
    ]
    b = next(i for i, ln in enumerate(lines) if ln.startswith("local  local-b"))
    assert lines[b + 1].strip() == "Ruby 3.4: 1 task(s), 0.07 inst-h, -"
    # 2 names x 2 executables x 2 Rubies x 60 s
    assert "per benchmark and executable on each of 2 Rubies (480 s per task)" in result.stdout


def test_matrix_run_counts_per_type_and_ruby_and_records_the_pairing(
    harness: Harness, ruby: str
) -> None:
    home = harness.tmp / "rubies-home"
    fake_ruby(home, "3.4.1", has_zjit=False, real=os.path.realpath(ruby))
    fake_ruby(home, "4.0.1", has_zjit=True, real=os.path.realpath(ruby))
    harness.start(harness.config(CONFIG), HOME=str(home))
    code, out, err = harness.wait(timeout=300)
    assert code == 0, err
    run_id = last_json(out)["run_id"]
    folder = harness.results / str(run_id)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == 3 and manifest["task_count"] == 3
    counts = sorted(
        (c["alias"], c["ruby_version"], c["tasks"], c["completed"]) for c in manifest["counts"]
    )
    assert counts == [
        ("a", "3.4", 2, 2),
        ("a", "4.0", 2, 2),
        ("b", "3.4", 1, 1),
        ("b", "4.0", 1, 1),
    ]
    for task in manifest["tasks"]:
        assert task["ruby_versions"] == ["3.4", "4.0"]
        meta = json.loads((folder / task["directory"] / "metadata.json").read_text())
        assert meta["ruby"]["ruby_versions"] == ["3.4", "4.0"]
        assert set(meta["ruby"]["rubies"]) == {"3.4", "4.0"}
        assert "4.0.1 (fake ruby for tests" in meta["ruby"]["rubies"]["4.0"]["ruby_description"]
        order = meta["benchmark_order"]
        labels = [c["label"] for c in order["columns"]]
        assert labels == ["interp@3.4", "yjit-64m@3.4", "interp@4.0", "yjit-64m@4.0"]
        ran = [tuple(r) for r in order["ran"]]
        # Each benchmark on all four columns in turn (order reversed every other one).
        first, second = ran[:4], ran[4:]
        assert [e for e, _ in first] in (labels, labels[::-1]) and len({b for _, b in first}) == 1
        assert [e for e, _ in second] == [e for e, _ in first][::-1]
        assert meta["checks"]["executables_verified"] is True
        overhead = meta["memory"]["yjit-64m@3.4"]["overhead_vs_interp"]
        assert overhead["vs"] == "interp@3.4" and overhead["peak_rss_ratio"] > 0
    # The report `cloudbench run` wrote: rows for every (Ruby, executable) of both types.
    summary = json.loads((folder / "report" / "summary.json").read_text())
    assert summary["format_version"] == 4  # 4: boot times per type (issue 27)
    columns = {"interp@3.4", "yjit-64m@3.4", "interp@4.0", "yjit-64m@4.0"}
    assert {c["label"] for c in summary["matrix"]["columns"]} == columns
    # A type whose every task this shared machine's neighbours disqualified (a process
    # pinned on its CPUs: checks.own_core) has no rows; the exclusions say why.
    excluded = summary["excluded"]
    tasks_out = [e["alias"] for e in excluded if not e["reason"].startswith("benchmark ")]
    kept = {alias for alias, n in (("a", 2), ("b", 1)) if tasks_out.count(alias) < n}
    assert kept, excluded
    for entry in summary["instance_types"]:
        if entry["alias"] in kept:
            assert set(entry["by_executable"]) == columns, (entry["alias"], excluded)
    rows = {(b["alias"], b["executable"], b["name"]) for b in summary["benchmarks"]}
    wanted = {(a, c, n) for a in kept for c in columns for n in ("fib", "loops")}
    assert wanted <= rows, excluded
    for alias in kept:
        jit, over = summary["matrix"]["jit_speedups"][alias], summary["matrix"]["ruby_speedups"]
        assert set(jit) == {"yjit-64m@3.4", "yjit-64m@4.0"}
        assert jit["yjit-64m@4.0"]["vs"] == "interp@4.0"
        assert over[alias]["yjit-64m@4.0"]["vs"] == "yjit-64m@3.4"
    assert "headline: yjit-64m@4.0 (default: Ruby 4.0's fastest verified JIT)" in out + err

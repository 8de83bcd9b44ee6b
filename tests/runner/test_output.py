from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudbench.protocol import BenchmarkSettings
from cloudbench.runner.output import (
    ProgressTracker,
    ResultFormatError,
    Timeline,
    build_command,
    parse_failed_benchmarks,
    parse_progress_line,
    read_failed_benchmarks,
    read_result_json,
)


def test_progress_lines_from_real_output(fixtures_dir: Path) -> None:
    lines = (fixtures_dir / "output.txt").read_text().splitlines()
    parsed = [p for p in map(parse_progress_line, lines) if p]
    assert len(parsed) == 12  # 6 benchmarks x 2 executables
    assert (parsed[0].name, parsed[0].index, parsed[0].total) == ("binarytrees", 1, 6)
    assert parsed[-1].name == "setivar"
    assert parse_progress_line("+ setarch x86_64 -R taskset -c 0 ruby fib.rb") is None


def test_progress_spans_both_executables(fixtures_dir: Path) -> None:
    tracker = ProgressTracker(executables=2)
    seen = []
    for line in (fixtures_dir / "output.txt").read_text().splitlines():
        if tracker.feed(line):
            seen.append(tracker.snapshot())
    assert seen[0] == ("binarytrees", 0.0)
    assert seen[6] == ("binarytrees", 50.0)  # second executable starts half way
    assert seen[-1][0] == "setivar"
    assert seen[-1][1] == pytest.approx(100 * 11 / 12, abs=0.1)
    assert [pct for _, pct in seen] == sorted(pct for _, pct in seen)


def test_interleaved_lines_name_their_executable() -> None:
    """ruby-bench's --interleave (lib/benchmark_runner/cli.rb at 09b76c8b) prints
    `Running benchmark "NAME" [EXE] (i/N)`, the executables reversed every other one."""
    lines = [
        'Running benchmark "fib" [interp] (1/2)',
        "+ ruby fib.rb",
        'Running benchmark "fib" [yjit] (1/2)',
        'Running benchmark "nbody" [yjit] (2/2)',
        'Running benchmark "nbody" [interp] (2/2)',
    ]
    tracker, timeline, seen = ProgressTracker(executables=2), Timeline(["interp", "yjit"]), []
    for n, line in enumerate(lines):
        timeline.feed(line, f"t{n}")
        if tracker.feed(line):
            seen.append(tracker.snapshot())
    assert seen == [("fib", 0.0), ("fib", 25.0), ("nbody", 50.0), ("nbody", 75.0)]
    ran = [(e["executable"], e["benchmark"]) for e in timeline.close("end")]
    assert ran == [("interp", "fib"), ("yjit", "fib"), ("yjit", "nbody"), ("interp", "nbody")]
    progress = parse_progress_line(lines[2])
    assert progress is not None and (progress.name, progress.executable) == ("fib", "yjit")


def test_failed_benchmarks_from_failure_case(fixtures_dir: Path) -> None:
    failed = read_failed_benchmarks(fixtures_dir / "failure" / "output.txt")
    assert failed == {"interp": ["erubi"], "yjit": ["erubi"]}
    sweep = read_failed_benchmarks(fixtures_dir / "single_exe_pure_sweep" / "output.txt")
    assert sweep == {"ruby": ["protoboeuf", "protoboeuf-encode"]}
    assert read_failed_benchmarks(fixtures_dir / "output.txt") == {}


def test_failed_count_line_is_not_the_section() -> None:
    assert parse_failed_benchmarks(["Failed benchmarks: 2", "", "bench  x"]) == {}


def test_result_json_shape(fixtures_dir: Path) -> None:
    summary = read_result_json(fixtures_dir / "output_001.json")
    assert set(summary.executables) == {"interp", "yjit"}
    assert "+YJIT" in summary.executables["yjit"]
    assert summary.benchmarks["interp"] == sorted(
        ["fib", "nbody", "respond_to", "setivar", "binarytrees", "ruby-json"]
    )
    failure = read_result_json(fixtures_dir / "failure" / "output_001.json")
    assert failure.benchmarks == {"interp": ["fib"], "yjit": ["fib"]}  # erubi left out
    gc = read_result_json(fixtures_dir / "single_exe_pure_sweep" / "output_001.json")
    assert list(gc.executables) == ["ruby"]


def test_result_json_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "output.json"
    for content in [
        "not json",
        "[]",
        json.dumps({"metadata": {}}),
        json.dumps({"metadata": {}, "raw_data": {"x": {"fib": {}}}}),
    ]:
        bad.write_text(content)
        with pytest.raises(ResultFormatError):
            read_result_json(bad)


def test_command_defaults_to_headline_yjit() -> None:
    args, env = build_command(BenchmarkSettings(), "/out/output")
    assert args[:3] == ["--no-sudo", "--no-pinning", "--out-name=/out/output"]
    assert args[3:5] == ["-e", "yjit::ruby --yjit"]
    assert "--category=headline" in args
    assert env == {}


def test_command_full_selection() -> None:
    settings = BenchmarkSettings(
        names=["fib", "nbody"],
        categories=["micro"],
        warmup_iterations=2,
        bench_iterations=5,
        min_bench_time=1.5,
        executables=["interp", "yjit"],
        extra_args=["--rss"],
    )
    args, env = build_command(settings, "/o/output", "/usr/bin/ruby3.1")
    assert args == [
        "--no-sudo",
        "--no-pinning",
        "--out-name=/o/output",
        "-e",
        "interp::/usr/bin/ruby3.1",
        "-e",
        "yjit::/usr/bin/ruby3.1 --yjit",
        "--warmup=2",
        "--bench=5",
        "--category=micro",
        "--rss",
        "fib",
        "nbody",
    ]
    assert env == {"MIN_BENCH_TIME": "2"}  # harnesses read it with Integer()
    names_only = build_command(BenchmarkSettings(names=["fib"]), "/o/output")[0]
    assert not any(a.startswith("--category") for a in names_only)

"""Several Rubies in containers (runner/alternate.py): the order and the merge, on files.

The end-to-end path (stand-in Ruby images, a real runner and orchestrator) is
tests/runner/test_matrix_runner.py::test_two_fake_ruby_images_alternate_by_benchmark_one_process_each.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cloudbench.protocol import BenchmarkSettings, TaskAssignment
from cloudbench.runner.alternate import Alternation, merge_outputs, needs_alternation, plan
from cloudbench.runner.executors.base import ExecutionSpec, Provisioned, ProvisionError
from cloudbench.runner.executors.host import HostExecutor
from cloudbench.runner.ordering import SHUFFLED
from cloudbench.runner.output import ProgressTracker, read_failed_benchmarks, read_result_json
from cloudbench.runner.ruby_bench import RubyBenchSource
from tests.cpus import leased
from tests.runner.fake_rubies import fake_ruby


def test_plan_shuffles_with_the_seed_and_alternates_the_rubies() -> None:
    names = ["a", "b", "c", "d"]
    order = plan(names, ["3.4", "4.0"], seed=7)
    expected = list(names)
    random.Random(7).shuffle(expected)
    assert [b for _, b in order[::2]] == expected == [b for _, b in order[1::2]]
    assert [r for r, _ in order] == ["3.4", "4.0", "4.0", "3.4"] * 2
    # Without a seed: the suite's own order; each Ruby first on half the benchmarks.
    assert plan(["x", "y"], ["3.4", "4.0", "4.1"], None) == [
        ("3.4", "x"),
        ("4.0", "x"),
        ("4.1", "x"),
        ("4.1", "y"),
        ("4.0", "y"),
        ("3.4", "y"),
    ]


def test_only_several_rubies_with_an_image_alternate() -> None:
    host = Provisioned("3.4", "ruby 3.4", "/usr/bin/ruby")
    image = Provisioned("4.0", "ruby 4.0", "ruby", image_id="sha256:1")
    assert not needs_alternation({"3.4": host, "4.0": Provisioned("4.0", "", "/r")})
    assert not needs_alternation({"4.0": image})
    assert needs_alternation({"3.4": host, "4.0": image})


def _process(directory: Path, label: str, bench: str, ms: list[float]) -> Path:
    directory.mkdir(parents=True)
    data = {
        "metadata": {label: f"ruby -v of {label}"},
        "raw_data": {label: {bench: {"bench": ms, "warmup": [], "maxrss": 1}}},
    }
    (directory / "output.json").write_text(json.dumps(data))
    (directory / "output.csv").write_text(f"bench,{label} (ms)\n{bench},{ms[0]}\n")
    return directory


def test_merge_keeps_each_process_result_unpooled(tmp_path: Path) -> None:
    dirs = [
        _process(tmp_path / "000" / "out", "yjit@3.4", "fib", [1.0, 2.0]),
        _process(tmp_path / "001" / "out", "yjit@4.0", "fib", [3.0]),
        _process(tmp_path / "002" / "out", "yjit@4.0", "loops", [4.0]),
        _process(tmp_path / "003" / "out", "yjit@3.4", "loops", [5.0]),
    ]
    (tmp_path / "004" / "out").mkdir(parents=True)  # a process that wrote nothing
    dirs.append(tmp_path / "004" / "out")
    out = tmp_path / "merged"
    out.mkdir()
    merge_outputs(dirs, out)
    data = json.loads((out / "output.json").read_text())
    assert data["raw_data"]["yjit@3.4"]["fib"]["bench"] == [1.0, 2.0]
    assert data["raw_data"]["yjit@4.0"]["loops"]["bench"] == [4.0]
    summary = read_result_json(out / "output.json")
    assert summary.benchmarks == {"yjit@3.4": ["fib", "loops"], "yjit@4.0": ["fib", "loops"]}
    assert summary.executables["yjit@4.0"] == "ruby -v of yjit@4.0"
    assert (out / "output.csv").read_text().count("# 00") == 4


def test_merge_of_nothing_reads_as_no_benchmark_ran(tmp_path: Path) -> None:
    merge_outputs([], tmp_path)
    assert read_result_json(tmp_path / "output.json").benchmarks == {}
    other = tmp_path / "failed-listing"
    other.mkdir()
    merge_outputs([], other, always=False)
    assert not (other / "output.json").exists()


def test_progress_spans_the_processes() -> None:
    tracker = ProgressTracker(4)
    tracker.restart(2, base=0.5, share=0.25)  # the third of four processes, two columns
    assert tracker.snapshot() == (None, 50.0)
    tracker.feed('Running benchmark "fib" [yjit@4.0] (1/1)')
    tracker.feed('Running benchmark "fib" [interp@4.0] (1/1)')
    assert tracker.snapshot() == ("fib", 62.5)


# The alternation with real processes: the fake suite (tests/fake_ruby_bench) under the
# host executor, with FAKE RUBIES (tests/runner/fake_rubies.py: the host's Ruby 3.1
# claiming 3.4.1 / 4.0.1). In a runner only containers alternate (one image per Ruby);
# the order, the listing and the merge are the same whatever runs each process.


@pytest.fixture
def cpu() -> Iterator[int]:
    """The CPU the processes are pinned to, under its lease as any cloudbench benchmark."""
    first = sorted(os.sched_getaffinity(0))[0]
    with leased([first], "alternate"):
        yield first


def _alternation(
    tmp_path: Path,
    ruby: str,
    monkeypatch: pytest.MonkeyPatch,
    source: RubyBenchSource,
    names: list[str],
    cpu: int,
    seed: int | None = 11,
) -> tuple[Alternation, list[tuple[str, int, int]]]:
    home = tmp_path / "home"
    fake_ruby(home, "3.4.1", has_zjit=False, real=os.path.realpath(ruby))
    fake_ruby(home, "4.0.1", has_zjit=False, real=os.path.realpath(ruby))
    monkeypatch.setenv("HOME", str(home))
    executor = HostExecutor(source)
    rubies = {v: executor.provision(v) for v in ("3.4", "4.0")}
    settings = {
        "names": names,
        "executables": ["interp", "yjit"],
        "bench_iterations": 1,
        "warmup_iterations": 0,
    }
    task = TaskAssignment(
        id=7,
        run_id=1,
        provider="local",
        instance_type="t",
        alias="t",
        run_number=1,
        ruby_version="3.4",
        ruby_versions=["3.4", "4.0"],
        lease=1,
        benchmarks=BenchmarkSettings.model_validate(settings),
    )
    work = tmp_path / "task"
    (work / "out").mkdir(parents=True)
    spec = ExecutionSpec(
        task_id=7,
        run_id=1,
        runner_id="r",
        benchmarks=task.benchmarks,
        provisioned=rubies["3.4"],
        cpus=(sorted(os.sched_getaffinity(0))[0],),
        work_dir=work,
        out_dir=work / "out",
        log_path=work / "output.txt",
        timeout=120,
        seed=seed,
        interleave=True,
    )
    told: list[tuple[str, int, int]] = []
    steps = Alternation(executor, spec, task, rubies, lambda s, i, n: told.append((s.ruby, i, n)))
    return steps, told


def test_real_processes_alternate_and_merge(
    tmp_path: Path,
    ruby: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_source: RubyBenchSource,
    cpu: int,
) -> None:
    steps, told = _alternation(tmp_path, ruby, monkeypatch, fake_source, ["loops", "fib"], cpu)
    result = steps.run()
    assert result.exit_code == 0, steps.spec.log_path.read_text()
    processes = steps.processes()
    # The listing (in the suite's own name order), then one process per Ruby and benchmark.
    assert [(p["ruby_version"], p["benchmark"]) for p in processes] == [
        ("3.4", None),
        *plan(["fib", "loops"], ["3.4", "4.0"], 11),
    ]
    assert told == [
        ("3.4", -1, 0),
        *[(r, i, 4) for i, (r, _) in enumerate(plan(["fib", "loops"], ["3.4", "4.0"], 11))],
    ]
    assert len(result.steps) == 5 and result.command == result.steps[1].command
    assert "fib" in result.steps[1].command or "loops" in result.steps[1].command
    data = json.loads((steps.spec.out_dir / "output.json").read_text())
    assert set(data["raw_data"]) == {"interp@3.4", "yjit@3.4", "interp@4.0", "yjit@4.0"}
    for label, benches in data["raw_data"].items():
        assert set(benches) == {"fib", "loops"}, label
        version = "4.0.1" if label.endswith("4.0") else "3.4.1"
        assert all(f"ruby {version} (fake" in b["RUBY_DESCRIPTION"] for b in benches.values())
    log = steps.spec.log_path.read_text()
    assert f"{SHUFFLED}11" in log and log.count("benchmarks selected: fib loops") == 1
    # Each process ran its one benchmark on its Ruby's two columns, interleaved.
    assert log.count('Running benchmark "fib" [interp@3.4] (1/1)') == 1


def test_nothing_selected_reads_as_no_benchmark_ran(
    tmp_path: Path,
    ruby: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_source: RubyBenchSource,
    cpu: int,
) -> None:
    steps, _ = _alternation(tmp_path, ruby, monkeypatch, fake_source, ["no_such_benchmark"], cpu)
    result = steps.run()
    assert result.exit_code == 0 and len(result.steps) == 1
    assert read_result_json(steps.spec.out_dir / "output.json").benchmarks == {}


def test_a_failing_benchmark_fails_alone(
    tmp_path: Path,
    ruby: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_source: RubyBenchSource,
    cpu: int,
) -> None:
    steps, _ = _alternation(tmp_path, ruby, monkeypatch, fake_source, ["failing", "fib"], cpu, None)
    result = steps.run()
    codes = {(p["ruby_version"], p["benchmark"]): p["exit_code"] for p in steps.processes()}
    assert codes == {
        ("3.4", None): 0,
        ("3.4", "failing"): 1,
        ("4.0", "failing"): 1,
        ("3.4", "fib"): 0,
        ("4.0", "fib"): 0,
    }
    assert result.exit_code == 1
    failed = read_failed_benchmarks(steps.spec.log_path)
    assert failed == {
        "interp@3.4": ["failing"],
        "yjit@3.4": ["failing"],
        "interp@4.0": ["failing"],
        "yjit@4.0": ["failing"],
    }
    summary = read_result_json(steps.spec.out_dir / "output.json")
    assert all(names == ["fib"] for names in summary.benchmarks.values()), summary


def test_a_suite_without_benchmark_suite_is_refused_with_the_reason(
    tmp_path: Path,
    ruby: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_source: RubyBenchSource,
    cpu: int,
) -> None:
    old = tmp_path / "old-suite"
    shutil.copytree(fake_source.path, old)
    (old / "lib" / "benchmark_suite.rb").unlink()
    source = replace(fake_source, path=old)
    steps, _ = _alternation(tmp_path, ruby, monkeypatch, source, ["fib"], cpu)
    with pytest.raises(
        ProvisionError,
        match=r"listing the selected benchmarks with Ruby 3\.4 "
        r"failed \(exit 1; see output\.txt\).*lib/benchmark_suite\.rb",
    ):
        steps.run()
    assert "benchmark_suite.rb" in steps.spec.log_path.read_text()

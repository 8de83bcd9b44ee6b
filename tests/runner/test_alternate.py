"""Several Rubies in containers (runner/alternate.py): the order and the merge, on files.

The end-to-end path (stand-in Ruby images, a real runner and orchestrator) is
tests/runner/test_matrix_runner.py::test_two_fake_ruby_images_alternate_by_benchmark_one_process_each.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from cloudbench.runner.alternate import merge_outputs, needs_alternation, plan
from cloudbench.runner.executors.base import Provisioned
from cloudbench.runner.output import ProgressTracker, read_result_json


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

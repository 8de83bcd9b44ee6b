"""The runner reads benchmark categories from the suite's benchmarks.yml."""

from __future__ import annotations

from pathlib import Path

from cloudbench.runner.ruby_bench import suite_categories

FAKE_SUITE = Path(__file__).resolve().parents[1] / "fake_ruby_bench"


def test_categories_of_the_fake_suite() -> None:
    categories = suite_categories(FAKE_SUITE)
    assert categories["fib"] == "headline" and categories["nbody"] == "headline"
    assert categories["strings"] == "micro" and categories["failing"] == "other"


def test_missing_or_broken_benchmarks_yml_gives_no_categories(tmp_path: Path) -> None:
    assert suite_categories(tmp_path) == {}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "benchmarks.yml").write_text("fib: [unclosed\n")
    assert suite_categories(broken) == {}
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "benchmarks.yml").write_text(
        "fib:\n  desc: no category\nloops: 3\nnbody:\n  category: headline\n"
    )
    assert suite_categories(odd) == {"nbody": "headline"}

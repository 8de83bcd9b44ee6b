"""Which of the suite's benchmarks a run selects, and so which Gemfiles its image needs.

ruby-bench's BenchmarkSuite finds `benchmarks/NAME.rb` and `benchmarks/NAME/benchmark.rb`,
keeps those whose category (benchmarks.yml, "other" when it names none) is one of
`--category` (any when none is given) and whose name is one of the positional names (any
when none is given; the config admits plain names only, never ruby-bench's `/REGEX/`).
The benchmark image installs the gems of exactly those with a Gemfile: a headline run
does not install the others'.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cloudbench.protocol import BenchmarkSettings
from cloudbench.runner.ruby_bench import suite_categories

DEFAULT_CATEGORY = "other"


def _names(suite: Path) -> list[str]:
    root = suite / "benchmarks"
    found = {p.stem for p in root.glob("*.rb") if p.is_file()}
    found |= {p.parent.name for p in root.glob("*/benchmark.rb") if p.is_file()}
    return sorted(found)


def selected(suite: Path, settings: BenchmarkSettings | None) -> list[str]:
    """The benchmarks a task with `settings` runs (every one when `settings` is None)."""
    names = _names(suite)
    if settings is None:
        return names
    categories = suite_categories(suite)
    return [
        n
        for n in names
        if (not settings.categories or categories.get(n, DEFAULT_CATEGORY) in settings.categories)
        and (not settings.names or n in settings.names)
    ]


def gemfile_dirs(suite: Path, settings: BenchmarkSettings | None) -> list[str]:
    """`benchmarks/NAME` of each selected benchmark that has a Gemfile, sorted."""
    return [
        f"benchmarks/{n}"
        for n in selected(suite, settings)
        if (suite / "benchmarks" / n / "Gemfile").is_file()
    ]


def selection_id(gemfiles: list[str]) -> str:
    """8 hex digits naming a set of Gemfiles (part of the image's tag)."""
    return hashlib.sha256("\n".join(sorted(gemfiles)).encode()).hexdigest()[:8]

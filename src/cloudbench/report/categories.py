"""ruby-bench's benchmark categories (benchmarks.yml: headline, other, micro).

The runner records them per task in metadata.json (`benchmark_categories`); results from
before that have none, and their geomeans run over every benchmark, as before.
"""

from __future__ import annotations

from collections.abc import Iterable

from cloudbench.report.merge import ResultSet

HEADLINE = "headline"


def benchmark_categories(results: ResultSet) -> dict[str, str]:
    """benchmark → category over every task's metadata (the first task naming one wins)."""
    found: dict[str, str] = {}
    for task in results.tasks:
        recorded = task.metadata.get("benchmark_categories")
        if not isinstance(recorded, dict):
            continue
        for name, category in recorded.items():
            if isinstance(category, str):
                found.setdefault(str(name), category)
    return found


def geomean_set(names: Iterable[str], categories: dict[str, str]) -> tuple[list[str], str | None]:
    """(the benchmarks a geomean runs over, "headline" or None meaning all of `names`).

    The headline benchmarks when any of `names` is one, else all of them.
    """
    names = sorted(names)
    headline = [n for n in names if categories.get(n) == HEADLINE]
    return (headline, HEADLINE) if headline else (names, None)

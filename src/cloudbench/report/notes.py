"""Plain sentences about what a report could not compare, for summary.json `notes`, the
page and the terminal: benchmarks not every type ran, and files that were unusable."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudbench.report.groups import Cell
from cloudbench.report.merge import ResultSet

if TYPE_CHECKING:
    from cloudbench.report.pairwise import Comparison

SHOWN = 8  # benchmark names listed before "and N more"


def _names(names: list[str]) -> str:
    more = len(names) - SHOWN
    return ", ".join(names[:SHOWN]) + (f" and {more} more" if more > 0 else "")


def benchmark_set_notes(
    results: ResultSet, cells: dict[tuple[str, str], Cell], comparisons: dict[str, Comparison]
) -> list[str]:
    out = []
    who = "the merged runs" if len(results.runs) > 1 else "the types"
    for exe in results.executables:
        mine = [c for (_, e), c in cells.items() if e == exe]
        every = frozenset.intersection(*(c.completed() for c in mine)) if mine else frozenset()
        some = sorted(frozenset.union(*(c.completed() for c in mine)) - every) if mine else []
        if not some:
            continue
        cmp = comparisons.get(exe)
        over = (
            f"its geomean covers the {len(cmp.names)} benchmark(s) every type ran"
            if cmp
            else "no benchmark was run by every type, so no ranking"
        )
        out.append(
            f"{who} ran different benchmark sets: {exe}: {over}; not run by every "
            f"type: {_names(some)}"
        )
    return out


def report_notes(
    results: ResultSet, cells: dict[tuple[str, str], Cell], comparisons: dict[str, Comparison]
) -> list[str]:
    found = results.notes + benchmark_set_notes(results, cells, comparisons)
    found += [
        f"task {e.task_id} ({e.alias}) excluded: {e.reason}"
        for e in results.excluded
        if e.bad_input
    ]
    return found

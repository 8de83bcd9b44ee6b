"""The report in a terminal: the answer first, then a ranking that fits the width.

At 80 columns: rank, type, speed with its interval, price, perf per dollar, YJIT; wider
terminals add the instance type, task count and ties. A type's alias is never cut.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from cloudbench.report.view import rank_label

WIDE = 120
ALIAS_MAX = 30  # a "reasonable" alias: never truncated up to this length


def _num(value: dict[str, Any] | None, digits: int = 2) -> str:
    return "-" if not value else f"{value['estimate']:.{digits}f}"


def _ci(value: dict[str, Any] | None) -> str:
    if not value or value.get("ci_low") is None:
        return "-"
    return f"{value['ci_low']:.2f}-{value['ci_high']:.2f}"


def ranking_table(summary: dict[str, Any], width: int) -> Table:
    wide = width >= WIDE
    exe = summary["headline_executable"]
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False,
                  title=f"ranking vs {summary['baseline']} ({exe}, geomean, 95% CI)",
                  title_justify="left")  # fmt: skip
    longest = max((len(t["alias"]) for t in summary["instance_types"]), default=4)
    table.add_column("rank", no_wrap=True)
    table.add_column("type", no_wrap=True, min_width=min(longest, ALIAS_MAX))
    if wide:
        table.add_column("instance type", overflow="fold")
        table.add_column("tasks", justify="right")
    table.add_column("speed", justify="right", no_wrap=True)
    table.add_column("95% CI", no_wrap=True)
    table.add_column("$/h", justify="right", overflow="fold")
    table.add_column("perf/$", justify="right", no_wrap=True)
    table.add_column("YJIT", justify="right", no_wrap=True)
    if wide:
        table.add_column("tied with", overflow="fold")
    for t in summary["instance_types"]:
        price = "-" if t["usd_per_hour"] is None else f"{t['usd_per_hour']:.4f}"
        row = [rank_label(t, summary), t["alias"]]
        if wide:
            row += [f"{t['provider']}/{t['instance_type']}", str(t["tasks"])]
        row += [_num(t["geomean_speedup"], 3), _ci(t["geomean_speedup"]), price,
                _num(t["perf_per_dollar"]), _num(t["yjit_speedup"])]  # fmt: skip
        if wide:
            row.append(", ".join(t["tied_with"]) or "-")
        table.add_row(*row)
    return table


def print_answer(console: Console, summary: dict[str, Any]) -> None:
    answer = summary.get("answer") or {}
    for line in answer.get("sentences", []):
        console.print(line, markup=False, highlight=False)
    notes = answer.get("notes", [])
    if notes:
        console.print()
        for note in notes:
            console.print(f"note: {note}", markup=False, highlight=False, style="yellow")
    console.print()
    console.print(ranking_table(summary, console.width))

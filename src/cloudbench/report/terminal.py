"""The report in a terminal: the answer first, then a ranking that fits the width.

At 80 columns: rank interval, type, speed with its interval ("reference" for the
baseline), P(fastest), price, perf per dollar, YJIT; wider terminals add the instance
type, task count, P(best per dollar) and ties. A type's alias is never cut.
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


def _ci(entry: dict[str, Any], key: str) -> str:
    value = entry[key]
    if value and entry.get("reference"):
        return "reference"
    if not value or value.get("ci_low") is None:
        return "-"
    return f"{value['ci_low']:.2f}-{value['ci_high']:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _cells(t: dict[str, Any], summary: dict[str, Any]) -> dict[str, str]:
    """Every column's text for one type (the table keeps those that fit)."""
    price = "-" if t["usd_per_hour"] is None else f"{t['usd_per_hour']:.4f}"
    return {
        "rank": rank_label(t, summary),
        "type": t["alias"],
        "instance type": f"{t['provider']}/{t['instance_type']}",
        "tasks": str(t["tasks"]),
        "speed": _num(t["geomean_speedup"], 3),
        "95% CI": _ci(t, "geomean_speedup"),
        "P(fast)": _pct(t["prob_fastest"]),
        "$/h": price,
        "perf/$": _num(t["perf_per_dollar"]),
        "P(best $)": _pct(t["prob_best_per_dollar"]),
        "YJIT": _num(t["yjit_speedup"]),
        "tied with": ", ".join(t["tied_with"]) or "-",
    }


NARROW = ["rank", "type", "speed", "95% CI", "P(fast)", "$/h", "perf/$", "YJIT"]
WIDE_EXTRA = {"instance type": 2, "tasks": 3, "P(best $)": 9}  # column: position
DROPPED_FIRST = ["$/h", "YJIT", "perf/$"]  # when even NARROW does not fit (long aliases)
FOLDED = ("instance type", "tied with")  # may wrap; every other column never does
FOLD_MIN = 10  # the least width counted for a column that may wrap
GAP = 2  # between columns: the box's separator and one space of padding


def _columns(rows: list[dict[str, str]], width: int) -> list[str]:
    columns = list(NARROW)
    if width >= WIDE:
        for name, at in sorted(WIDE_EXTRA.items(), key=lambda x: x[1]):
            columns.insert(at, name)
        columns.append("tied with")

    def needed(names: list[str]) -> int:
        fixed = [n for n in names if n not in FOLDED]
        folded = FOLD_MIN * (len(names) - len(fixed))
        return (
            sum(max(len(n), *(len(r[n]) for r in rows)) for n in fixed)
            + folded
            + GAP * (len(names) - 1)
        )

    for name in DROPPED_FIRST:
        if needed(columns) <= width:
            break
        columns.remove(name)
    return columns


def ranking_table(summary: dict[str, Any], width: int) -> Table:
    exe = summary["headline_executable"]
    table = Table(
        box=box.SIMPLE_HEAD,
        padding=(0, 0, 0, 1),
        pad_edge=False,
        show_edge=False,
        title=f"ranking vs {summary['baseline']} ({exe}, geomean, 95% CI)",
        title_justify="left",
    )
    rows = [_cells(t, summary) for t in summary["instance_types"]]
    longest = max((len(t["alias"]) for t in summary["instance_types"]), default=4)
    columns = _columns(rows, width)
    for name in columns:
        left = name in ("rank", "type", "95% CI", *FOLDED)
        table.add_column(
            name,
            justify="left" if left else "right",
            no_wrap=name not in FOLDED,
            overflow="fold",
            min_width=min(longest, ALIAS_MAX) if name == "type" else None,
        )
    for row in rows:
        table.add_row(*(row[name] for name in columns))
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

"""Comparing a run with an earlier one: per type and benchmark, how much its time changed.

A type is matched by alias. Change = new time ÷ old time (above 1: slower), per
benchmark both runs completed, and per type the geometric mean over them (the headline
benchmarks when the results record categories), with the same interval methods as the
rest of the report (t on unit means with 2..9 units, else the hierarchical bootstrap).
A change is called out only when its 95% interval excludes 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cloudbench.report.categories import benchmark_categories, geomean_set
from cloudbench.report.columns import speedup_intervals
from cloudbench.report.errors import ReportInputError
from cloudbench.report.groups import Cell, build_cells
from cloudbench.report.merge import ResultSet
from cloudbench.report.stats import Group, Interval, seed_for, speedup_interval
from cloudbench.report.summary import DEFAULT_SEED


def resolve_run(arg: Path, results_root: Path = Path("results")) -> Path:
    """A results folder, or a run id in the results directory."""
    if arg.is_dir() or not str(arg).isdigit():
        return arg  # a folder, or one that load_run will call missing
    candidate = results_root / str(arg)
    if candidate.is_dir():
        return candidate
    raise ReportInputError(f"{arg}: neither a results folder nor a run id in {results_root}/")


def verdict(interval: Interval) -> str:
    if interval.ci_low is not None and interval.ci_low > 1:
        return "slower"
    if interval.ci_high is not None and interval.ci_high < 1:
        return "faster"
    return "same"


def _aligned(cell: Cell, names: list[str], tag: str) -> Group:
    columns = [cell.column(n) for n in names]
    values = cell.group.values[:, columns]
    return Group(values, cell.group.machines, seed_for(DEFAULT_SEED, cell.alias, tag))


def _executable(new: ResultSet, old: ResultSet, prefer: str | None) -> str | None:
    """The report's headline column when both runs have it, else yjit, else the first."""
    both = [e for e in new.executables if e in old.executables]
    for wanted in (prefer, "yjit"):
        if wanted in both:
            return wanted
    return both[0] if both else None


def _type(new: Cell, old: Cell, categories: dict[str, str]) -> dict[str, Any] | None:
    names = sorted(new.completed() & old.completed())
    if not names:
        return None
    after, before = _aligned(new, names, "new"), _aligned(old, names, "old")
    # speedup(base=new, other=old) = new time ÷ old time.
    rows = speedup_intervals(after, before)
    chosen, category = geomean_set(names, categories)
    overall = speedup_interval(after, before, np.asarray([names.index(n) for n in chosen]))
    return {
        "alias": new.alias,
        "change": overall.as_json(),
        "ci_method": overall.method,
        "verdict": verdict(overall),
        "geomean_category": category,
        "geomean_over": len(chosen),
        "benchmarks": [
            {"name": n, "change": r.as_json(), "verdict": verdict(r)}
            for n, r in zip(names, rows, strict=True)
        ],
    }


def compare(new: ResultSet, old: ResultSet, prefer: str | None = None) -> dict[str, Any]:
    """summary.json's `comparison`: per type in both runs its change; types in one only.
    `prefer`: the executable to compare on when both runs have it (the headline)."""
    exe = _executable(new, old, prefer)
    if exe is None:
        raise ReportInputError(
            f"--against: the two runs share no executable (this run: "
            f"{', '.join(new.executables)}; the earlier: {', '.join(old.executables)})"
        )
    cells_new, cells_old = build_cells(new, DEFAULT_SEED), build_cells(old, DEFAULT_SEED)
    categories = {**benchmark_categories(old), **benchmark_categories(new)}
    types = []
    for alias in new.aliases:
        if (alias, exe) in cells_new and (alias, exe) in cells_old:
            entry = _type(cells_new[(alias, exe)], cells_old[(alias, exe)], categories)
            if entry is not None:
                types.append(entry)
    return {
        "executable": exe,
        "new_runs": [r.run_id for r in new.runs],
        "old_runs": [r.run_id for r in old.runs],
        "types": types,
        "only_new": [a for a in new.aliases if a not in old.aliases],
        "only_old": [a for a in old.aliases if a not in new.aliases],
        "differs": [
            f"{name}: {' vs '.join(old.facts[name])} -> {' vs '.join(new.facts[name])}"
            for name in new.facts
            if new.facts[name] != old.facts.get(name)
        ],
    }


def percent(interval: dict[str, Any]) -> str:
    """ "12.0% slower [95% CI 8.1%, 16.2%]" from a time ratio."""

    def signed(v: float) -> str:
        return f"{100 * (v - 1):+.1f}%"

    text = signed(interval["estimate"])
    if interval["ci_low"] is None:
        return text + " (no interval)"
    return f"{text} [95% CI {signed(interval['ci_low'])}, {signed(interval['ci_high'])}]"


def sentences(comparison: dict[str, Any]) -> list[str]:
    """The comparison in words: what got slower or faster, what is only in one run."""
    old = ", ".join(str(r) for r in comparison["old_runs"])
    out = []
    for kind in ("slower", "faster"):
        moved = [t for t in comparison["types"] if t["verdict"] == kind]
        for t in moved:
            out.append(
                f"{t['alias']} got {kind} than in run {old}: time "
                f"{percent(t['change'])} ({comparison['executable']}, geomean over "
                f"{t['geomean_over']} benchmarks)."
            )
    same = [t["alias"] for t in comparison["types"] if t["verdict"] == "same"]
    if same:
        out.append(f"No change beyond the intervals against run {old}: {', '.join(same)}.")
    if comparison["only_new"]:
        out.append(f"Only in this run: {', '.join(comparison['only_new'])}.")
    if comparison["only_old"]:
        out.append(f"Only in run {old}: {', '.join(comparison['only_old'])}.")
    out += [f"Differs between the runs: {d}." for d in comparison["differs"]]
    return out

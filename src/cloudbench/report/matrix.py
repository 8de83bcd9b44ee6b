"""The Ruby matrix in a report: which (Ruby, executable) heads the ranking, and the
speedups a JIT engineer reads first.

A column is a ruby-bench executable label: "yjit" with one Ruby, "yjit@4.0" with several
(metadata format 5 names its Ruby, executable and engine; older results have one Ruby and
labels that are engine names). Every column of a task ran on its machine in the same
minutes, interleaved by benchmark (runner/columns.py, runner/alternate.py), so each ratio
here is paired within tasks (groups.paired, stats.paired_speedup_interval):

- `jit_speedups`: per type, each JIT column over `interp` of the same Ruby;
- `ruby_speedups`: per type, each Ruby's column over the oldest Ruby's column with the
  same executable name;
- `memory`: per type and column the median over tasks of the peak RSS (ruby-bench's
  `maxrss`), its ratio to `interp` of the same Ruby, and the JIT's code-size statistics
  as the runner recorded them (metadata.json `memory`).

The headline defaults to the newest Ruby with its fastest verified JIT (every task that ran
it passed `checks.executables_verified`); `--headline RUBY/EXECUTABLE` picks another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloudbench.protocol.executables import JITS, split_label
from cloudbench.report.categories import geomean_set
from cloudbench.report.errors import ReportInputError
from cloudbench.report.groups import Cell, paired
from cloudbench.report.merge import ResultSet
from cloudbench.report.stats import paired_speedup_interval


@dataclass(frozen=True)
class Column:
    label: str
    ruby: str  # as requested ("4.0"), or the single Ruby's version
    name: str  # executable name ("yjit-64m")
    jit: str  # interp, yjit, zjit ("?" when an old label is not an engine name)
    verified: bool


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.replace("-", ".").split("."))


def _record(results: ResultSet, label: str) -> dict[str, Any]:
    for task in results.tasks:
        ruby = task.metadata.get("ruby")
        exes = ruby.get("executables") if isinstance(ruby, dict) else None
        entry = exes.get(label) if isinstance(exes, dict) else None
        if isinstance(entry, dict):
            return entry
    return {}


def columns(results: ResultSet, single_ruby: str | None) -> list[Column]:
    out = []
    for label in results.executables:
        ruby, name = split_label(label)
        record = _record(results, label)
        tasks = [t for t in results.tasks if label in t.results]
        verified = bool(tasks) and all(
            (t.metadata.get("checks") or {}).get("executables_verified") is True for t in tasks
        )
        jit = str(record.get("jit") or (name if name in JITS else "?"))
        version = str(record.get("ruby_version") or ruby or single_ruby or "?")
        out.append(Column(label, version, str(record.get("name") or name), jit, verified))
    return out


def _speed(cells: dict[tuple[str, str], Cell], label: str) -> float:
    """Higher is faster: minus the mean log time over every type's completed benchmarks."""
    logs = []
    for (_alias, exe), cell in cells.items():
        if exe == label:
            with np.errstate(all="ignore"):
                means = np.nanmean(cell.group.values, axis=0)
            logs += [math.log(v) for v in means if np.isfinite(v) and v > 0]
    return -float(np.mean(logs)) if logs else -math.inf


def choose_headline(
    cols: list[Column], cells: dict[tuple[str, str], Cell], wanted: str | None
) -> tuple[str, str]:
    """(label, how it was chosen); wanted is RUBY/EXECUTABLE (or a bare label)."""
    if wanted:
        ruby, _, name = wanted.rpartition("/")
        for col in cols:
            if col.label == wanted or (col.name == name and col.ruby == ruby):
                return col.label, "--headline"
        offered = ", ".join(f"{c.ruby}/{c.name}" for c in cols)
        raise ReportInputError(f"--headline {wanted}: no such column; choose one of {offered}")
    newest = max((c.ruby for c in cols), key=_version_key)
    mine = [c for c in cols if c.ruby == newest]
    jits = [c for c in mine if c.jit not in ("interp", "?") and c.verified]
    if jits:
        best = max(jits, key=lambda c: _speed(cells, c.label))
        return best.label, f"default: Ruby {newest}'s fastest verified JIT"
    # As before the matrix: yjit when there is one, else the first column.
    fallback = next((c for c in mine if c.name == "yjit"), mine[0])
    return fallback.label, f"default: Ruby {newest} has no verified JIT column"


def _ratio(
    cells: dict[tuple[str, str], Cell],
    alias: str,
    slow: str,
    fast: str,
    seed: int,
    categories: dict[str, str],
) -> dict[str, Any] | None:
    if (alias, slow) not in cells or (alias, fast) not in cells:
        return None
    a, b, names = paired(cells[(alias, slow)], cells[(alias, fast)], seed)
    if not names or a.values.shape[0] == 0:
        return None
    chosen, _ = geomean_set(names, categories)
    interval = paired_speedup_interval(a, b, np.asarray([names.index(n) for n in chosen]))
    return {
        "vs": slow,
        "speedup": interval.as_json(),
        "ci_method": interval.method,
        "benchmarks": len(chosen),
        "paired_tasks": int(a.values.shape[0]),
    }


def _peak(cell: Cell | None) -> float | None:
    """Median over tasks of each task's peak RSS (max over its benchmarks), bytes."""
    if cell is None or not np.isfinite(cell.maxrss).any():
        return None
    with np.errstate(all="ignore"):
        peaks = np.nanmax(cell.maxrss, axis=1)
    peaks = peaks[np.isfinite(peaks)]
    return float(np.median(peaks)) if peaks.size else None


def _jit_code(cell: Cell | None, label: str) -> dict[str, float]:
    """Per code-size statistic (metadata.json `memory`, format 5): the median over tasks
    of each task's largest value over its benchmarks; {} when none was recorded."""
    per_key: dict[str, list[float]] = {}
    for task in cell.tasks if cell else []:
        record = (task.metadata.get("memory") or {}).get(label) or {}
        largest: dict[str, float] = {}
        for bench in (record.get("benchmarks") or {}).values():
            for key, value in (bench.get("jit_code") or {}).items():
                largest[key] = max(largest.get(key, 0.0), float(value))
        for key, value in largest.items():
            per_key.setdefault(key, []).append(value)
    return {k: float(np.median(v)) for k, v in sorted(per_key.items())}


def _memory(
    results: ResultSet, cells: dict[tuple[str, str], Cell], cols: list[Column]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for alias in results.aliases:
        rows = {}
        for col in cols:
            peak = _peak(cells.get((alias, col.label)))
            if peak is None:
                continue
            base = next((c for c in cols if c.ruby == col.ruby and c.jit == "interp"), None)
            vs = base.label if base is not None and base != col else None
            interp = _peak(cells.get((alias, vs))) if vs else None
            rows[col.label] = {
                "peak_rss_bytes": peak,
                "jit_code_bytes": _jit_code(cells.get((alias, col.label)), col.label),
                "vs": vs if interp else None,
                "rss_overhead_vs_interp": round(peak / interp, 4) if interp else None,
            }
        if rows:
            out[alias] = rows
    return out


def matrix_summary(
    results: ResultSet,
    cells: dict[tuple[str, str], Cell],
    cols: list[Column],
    headline: tuple[str, str],
    seed: int,
    categories: dict[str, str],
) -> dict[str, Any]:
    """summary.json `matrix` (format 3)."""
    rubies = sorted({c.ruby for c in cols}, key=_version_key)
    jit_pairs = []
    for col in cols:
        base = next((c for c in cols if c.ruby == col.ruby and c.jit == "interp"), None)
        if base is not None and col.jit not in ("interp", "?"):
            jit_pairs.append((base.label, col.label))
    ruby_pairs = []
    for col in cols:
        oldest = next(c for r in rubies for c in cols if c.ruby == r and c.name == col.name)
        if oldest.label != col.label:
            ruby_pairs.append((oldest.label, col.label))
    out: dict[str, Any] = {"jit_speedups": {}, "ruby_speedups": {}}
    for key, pairs in (("jit_speedups", jit_pairs), ("ruby_speedups", ruby_pairs)):
        for alias in results.aliases:
            found = {
                fast: r
                for slow, fast in pairs
                if (r := _ratio(cells, alias, slow, fast, seed, categories))
            }
            if found:
                out[key][alias] = found
    return {
        "rubies": rubies,
        "columns": [vars(c) for c in cols],
        "headline": headline[0],
        "headline_chosen": headline[1],
        **out,
        "memory": _memory(results, cells, cols),
    }


def speedup_rows(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    """Every paired ratio, per type: JITs over interp of the same Ruby, then Rubies over
    the oldest Ruby with the same executable; `change` reads "+9.0 % [+6.0, +12.0]"."""
    rows = []
    for key, kind in (("jit_speedups", "JIT over interp"), ("ruby_speedups", "Ruby over oldest")):
        for alias, found in matrix[key].items():
            for label, r in found.items():
                s = r["speedup"]
                ci = ""
                if s["ci_low"] is not None and s["ci_high"] is not None:
                    ci = f" [{(s['ci_low'] - 1) * 100:+.1f}, {(s['ci_high'] - 1) * 100:+.1f}]"
                rows.append(
                    {
                        "alias": alias,
                        "label": label,
                        "vs": r["vs"],
                        "kind": kind,
                        "change": f"{(s['estimate'] - 1) * 100:+.1f} %{ci}",
                        "estimate": s["estimate"],
                        "ci_method": r["ci_method"],
                        "paired_tasks": r["paired_tasks"],
                        "benchmarks": r["benchmarks"],
                    }
                )
    return rows


def speedup_lines(matrix: dict[str, Any]) -> list[str]:
    """One line per type and ratio: "c7g: zjit@4.0 vs interp@4.0 +9.0 % [+6.0, +12.0]"."""
    return [f"{r['alias']}: {r['label']} vs {r['vs']} {r['change']}" for r in speedup_rows(matrix)]

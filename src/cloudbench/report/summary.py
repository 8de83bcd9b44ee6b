"""summary.json (format_version 2): types, ranking, prices, provenance, the Ruby matrix
(format 2 adds `matrix` and `headline_chosen`). See docs/report.md."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cloudbench.platform.prices import Price, PriceResolver
from cloudbench.report import matrix
from cloudbench.report.analysis import benchmark_rows
from cloudbench.report.categories import benchmark_categories, geomean_set
from cloudbench.report.errors import ReportInputError
from cloudbench.report.groups import Cell, build_cells, paired
from cloudbench.report.merge import ResultSet
from cloudbench.report.pricing import costs, price_note, resolve_prices
from cloudbench.report.provenance import provenance
from cloudbench.report.stats import (
    BOOTSTRAP_MIN_UNITS,
    Interval,
    overlaps,
    paired_speedup_interval,
    speedup_interval,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
DEFAULT_SEED = 20240601


@dataclass
class Options:
    baseline: str | None = None
    resolver: PriceResolver = field(default_factory=lambda: PriceResolver(offline=True))
    seed: int = DEFAULT_SEED
    headline: str | None = None  # RUBY/EXECUTABLE (report/matrix.py)


def headline_executable(results: ResultSet) -> str:
    exes = results.executables
    return "yjit" if "yjit" in exes else exes[0]


def _geomeans(
    cells: dict[tuple[str, str], Cell], aliases: list[str], baseline: str, exe: str,
    categories: dict[str, str],
) -> tuple[dict[str, Interval], list[str]]:  # fmt: skip
    """Per alias: geomean speedup vs the baseline over benchmarks every alias completed
    (its headline benchmarks when there are any)."""
    mine = [a for a in aliases if (a, exe) in cells]
    base = cells.get((baseline, exe))
    if base is None:
        return {}, []
    common = frozenset.intersection(*(cells[(a, exe)].completed() for a in mine))
    names, _ = geomean_set(common, categories)
    if not names:
        return {}, []
    columns = np.asarray([base.column(n) for n in names])
    return {a: speedup_interval(base.group, cells[(a, exe)].group, columns) for a in mine}, names


def _scaled(interval: Interval, factor: float) -> dict[str, float | None]:
    def scale(v: float | None) -> float | None:
        return None if v is None else v * factor

    return {"estimate": interval.estimate * factor, "ci_low": scale(interval.ci_low),
            "ci_high": scale(interval.ci_high)}  # fmt: skip


def _rank(speedups: dict[str, Interval]) -> dict[str, tuple[int, list[str]]]:
    order = sorted(speedups, key=lambda a: -speedups[a].estimate)
    return {
        alias: (i + 1, [o for o in order if o != alias and overlaps(speedups[alias], speedups[o])])
        for i, alias in enumerate(order)
    }


def _yjit(
    cells: dict[tuple[str, str], Cell], alias: str, seed: int, categories: dict[str, str]
) -> Interval | None:
    if (alias, "interp") not in cells or (alias, "yjit") not in cells:
        return None
    slow, fast, names = paired(cells[(alias, "interp")], cells[(alias, "yjit")], seed)
    if not names or slow.values.shape[0] == 0:
        return None
    chosen, _ = geomean_set(names, categories)
    columns = np.asarray([names.index(n) for n in chosen])
    return paired_speedup_interval(slow, fast, columns)


def _pareto(entries: list[dict[str, Any]]) -> None:
    priced = [e for e in entries if e["usd_per_hour"] is not None and e["geomean_speedup"]]
    for entry in entries:
        entry["pareto"] = None if entry["usd_per_hour"] is None else True
    for a in priced:
        for b in priced:
            cheaper = b["usd_per_hour"] <= a["usd_per_hour"]
            faster = b["geomean_speedup"]["estimate"] >= a["geomean_speedup"]["estimate"]
            strictly = (b["usd_per_hour"] < a["usd_per_hour"]) or (
                b["geomean_speedup"]["estimate"] > a["geomean_speedup"]["estimate"]
            )
            if b is not a and cheaper and faster and strictly:
                a["pareto"] = False


def _one(values: list[str]) -> str | None:
    return values[0] if len(values) == 1 else (" | ".join(values) if values else None)


def _ruby_version(descriptions: list[str]) -> str | None:
    versions = sorted({d.split()[1] for d in descriptions if len(d.split()) > 1})
    return _one(versions)


def _type_entry(
    results: ResultSet, alias: str, price: Price | None, region: str | None,
    cost: dict[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    provider, instance_type = results.types.get(alias, ("local", alias))
    tasks = [t for t in results.tasks if t.alias == alias]
    machines = sorted({t.machine for t in tasks})
    notes = []
    if len(machines) == 1 and len(tasks) > 1:
        notes.append(f"all {len(tasks)} tasks ran on one machine ({machines[0]}): its intervals "
                     "cannot include machine-to-machine variation")  # fmt: skip
    if provider == "local" and len(tasks) > 1 and len(machines) == 1:
        notes.append("local runners on one machine are one machine")
    units = len(machines) if len(machines) >= 2 else len(tasks)
    return {
        "provider": provider, "instance_type": instance_type, "alias": alias,
        "tasks": len(tasks), "machines": len(machines),
        "usd_per_hour": price.usd_per_hour if price else None,
        "price_source": price.source if price else None,
        "price_date": price.date if price else None,
        "price_note": price_note(provider, region, price), "region": region, "cost": cost,
        "ci_method": "bootstrap" if units >= BOOTSTRAP_MIN_UNITS else ("t" if units >= 2 else "none"),  # noqa: E501
        "notes": notes, "by_executable": {},
    }  # fmt: skip


def _fill_executable(
    entries: dict[str, dict[str, Any]], cells: dict[tuple[str, str], Cell],
    results: ResultSet, baseline: str, exe: str, categories: dict[str, str],
) -> list[str]:  # fmt: skip
    speedups, names = _geomeans(cells, results.aliases, baseline, exe, categories)
    base_price = entries[baseline]["usd_per_hour"]
    ranks = _rank(speedups)
    for alias, interval in speedups.items():
        price = entries[alias]["usd_per_hour"]
        per_dollar = None
        if price is not None and base_price is not None:
            per_dollar = _scaled(interval, base_price / price)
        rank, tied = ranks[alias]
        entries[alias]["by_executable"][exe] = {
            "geomean_speedup": interval.as_json(), "ci_method": interval.method,
            "perf_per_dollar": per_dollar, "rank": rank, "tied_with": tied,
            "benchmarks": len(names),
        }  # fmt: skip
    return names


def build_summary(results: ResultSet, options: Options) -> dict[str, Any]:
    baseline = options.baseline or results.aliases[0]
    if baseline not in results.aliases:
        raise ReportInputError(
            f"--baseline {baseline}: no such alias; choose one of {', '.join(results.aliases)}"
        )
    cells = build_cells(results, options.seed)
    prices, regions = resolve_prices(results, options.resolver)
    per_alias_cost, ledger = costs(results)
    entries = {a: _type_entry(results, a, prices[a], regions[a], per_alias_cost.get(a))
               for a in results.aliases}  # fmt: skip
    categories = benchmark_categories(results)
    geomean_names = {exe: _fill_executable(entries, cells, results, baseline, exe, categories)
                     for exe in results.executables}  # fmt: skip
    cols = matrix.columns(results, _ruby_version(results.facts["ruby_version"]))
    picked = matrix.choose_headline(cols, cells, options.headline)
    headline = picked[0]
    for alias, entry in entries.items():
        chosen = entry["by_executable"].get(headline, {})
        entry["geomean_speedup"] = chosen.get("geomean_speedup")
        entry["perf_per_dollar"] = chosen.get("perf_per_dollar")
        entry["rank"], entry["tied_with"] = chosen.get("rank"), chosen.get("tied_with", [])
        yjit = _yjit(cells, alias, options.seed, categories)
        entry["yjit_speedup"] = yjit.as_json() if yjit else None
        entry["yjit_ci_method"] = yjit.method if yjit else None
    ordered = sorted(entries.values(), key=lambda e: (e["rank"] is None, e["rank"] or 0))
    _pareto(ordered)
    usd = {a: (p.usd_per_hour if p else None) for a, p in prices.items()}
    rows, flags = benchmark_rows(cells, baseline, usd)
    flags += [{"kind": "warmup_trend", "alias": r["alias"], "executable": r["executable"],
               "benchmark": r["name"]} for r in rows if r["warmup_trend"]]  # fmt: skip
    return {
        "format_version": FORMAT_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "baseline": baseline, "headline_executable": headline,
        "executables": results.executables,
        "ruby_version": _ruby_version(results.facts["ruby_version"]),
        "ruby_description": _one(results.facts["ruby_version"]),
        "ruby_bench_commit": _one(results.facts["ruby_bench_commit"]),
        "settings": _one(results.facts["settings"]),
        "runs": [{"run_id": r.run_id, "path": str(r.path)} for r in results.runs],
        "mixed": results.mixed, "seed": options.seed,
        "bootstrap": {"replicates": 2000, "min_units": BOOTSTRAP_MIN_UNITS, "level": 0.95},
        "geomean_benchmarks": geomean_names, "benchmark_categories": categories,
        "geomean_category": {exe: geomean_set(names, categories)[1]
                             for exe, names in geomean_names.items()},
        "cost_ledger": ledger,
        "instance_types": ordered, "benchmarks": rows,
        "excluded": [vars(e) for e in results.excluded + results.failed_benchmarks],
        "flags": flags, "provenance": provenance(results),
        "headline_chosen": picked[1],
        "matrix": matrix.matrix_summary(results, cells, cols, picked, options.seed, categories),
    }  # fmt: skip

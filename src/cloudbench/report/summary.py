"""summary.json (format_version 4): types, ranking, pairs, prices, trust, provenance,
the Ruby matrix (format 3 = format 2's pairs and trust with `matrix` and
`headline_chosen`; format 4 adds per type `time_to_first_benchmark_s` and `capacity`).
See docs/report.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cloudbench.platform.prices import Price, PriceResolver
from cloudbench.report import boot, matrix
from cloudbench.report.analysis import benchmark_rows
from cloudbench.report.categories import benchmark_categories, geomean_set
from cloudbench.report.errors import ReportInputError
from cloudbench.report.groups import Cell, build_cells, paired
from cloudbench.report.merge import ResultSet
from cloudbench.report.notes import report_notes
from cloudbench.report.pairwise import Comparison, compare, contender, pareto_status
from cloudbench.report.pricing import costs, price_note, resolve_prices
from cloudbench.report.provenance import provenance
from cloudbench.report.stats import (
    BOOTSTRAP_MIN_UNITS,
    LEVEL,
    MIN_OUTLIER_TASKS,
    N_BOOT,
    OUTLIER_MADS,
    Interval,
    paired_speedup_interval,
)
from cloudbench.report.trust import trust_row

logger = logging.getLogger(__name__)

# 2: pairwise, reference baseline, trust, pareto_status, notes; 3: matrix, headline_chosen;
# 4: per type time_to_first_benchmark_s and capacity (issue 27)
FORMAT_VERSION = 4
DEFAULT_SEED = 20240601


@dataclass
class Options:
    baseline: str | None = None
    resolver: PriceResolver = field(default_factory=lambda: PriceResolver(offline=True))
    seed: int = DEFAULT_SEED
    headline: str | None = None  # RUBY/EXECUTABLE (report/matrix.py)


def _comparison(
    cells: dict[tuple[str, str], Cell],
    aliases: list[str],
    baseline: str,
    exe: str,
    categories: dict[str, str],
    prices: dict[str, float | None],
    seed: int,
) -> Comparison | None:
    """Every pair of types on `exe`'s geomean over the benchmarks every type completed
    (its headline benchmarks when there are any); None without a shared benchmark."""
    mine = [a for a in aliases if (a, exe) in cells]
    base = cells.get((baseline, exe))
    if base is None:
        return None
    common = frozenset.intersection(*(cells[(a, exe)].completed() for a in mine))
    names, _ = geomean_set(common, categories)
    if not names:
        return None
    columns = np.asarray([base.column(n) for n in names])
    found = [contender(a, cells[(a, exe)], columns) for a in mine]
    return compare(found, baseline, prices, seed, exe, names)


def _scaled(interval: Interval, factor: float) -> dict[str, float | None]:
    def scale(v: float | None) -> float | None:
        return None if v is None else v * factor

    return {
        "estimate": interval.estimate * factor,
        "ci_low": scale(interval.ci_low),
        "ci_high": scale(interval.ci_high),
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


def _one(values: list[str]) -> str | None:
    return values[0] if len(values) == 1 else (" | ".join(values) if values else None)


def _ruby_version(descriptions: list[str]) -> str | None:
    versions = sorted({d.split()[1] for d in descriptions if len(d.split()) > 1})
    return _one(versions)


def _type_entry(
    results: ResultSet,
    alias: str,
    price: Price | None,
    region: str | None,
    cost: dict[str, Any] | None,
) -> dict[str, Any]:
    provider, instance_type = results.types.get(alias, ("local", alias))
    tasks = [t for t in results.tasks if t.alias == alias]
    machines = sorted({t.machine for t in tasks})
    notes = []
    if len(machines) == 1 and len(tasks) > 1:
        notes.append(
            f"all {len(tasks)} tasks ran on one machine ({machines[0]}): its intervals "
            "cannot include machine-to-machine variation"
        )
    if provider == "local" and len(tasks) > 1 and len(machines) == 1:
        notes.append("local runners on one machine are one machine")
    units = len(machines) if len(machines) >= 2 else len(tasks)
    return {
        "provider": provider,
        "instance_type": instance_type,
        "alias": alias,
        "tasks": len(tasks),
        "machines": len(machines),
        "usd_per_hour": price.usd_per_hour if price else None,
        "price_source": price.source if price else None,
        "price_date": price.date if price else None,
        "price_note": price_note(provider, region, price),
        "region": region,
        "cost": cost,
        "ci_method": "bootstrap"
        if units >= BOOTSTRAP_MIN_UNITS
        else ("t" if units >= 2 else "none"),
        "notes": notes,
        "by_executable": {},
        "trust": trust_row([t.metadata for t in tasks]),
        "time_to_first_benchmark_s": boot.time_to_first_benchmark(tasks),
        "capacity": boot.capacity(tasks),
    }


def _fill_executable(
    entries: dict[str, dict[str, Any]], cmp: Comparison, baseline: str, exe: str
) -> None:
    base_price = entries[baseline]["usd_per_hour"]
    for alias, interval in cmp.vs_baseline.items():
        price = entries[alias]["usd_per_hour"]
        per_dollar = None
        if price is not None and base_price is not None:
            per_dollar = _scaled(interval, base_price / price)
        entries[alias]["by_executable"][exe] = {
            "geomean_speedup": interval.as_json(),
            "ci_method": interval.method,
            "perf_per_dollar": per_dollar,
            "rank": cmp.rank[alias],
            "tied_with": cmp.tied[alias],
            "benchmarks": len(cmp.names),
            "rank_interval": cmp.rank_interval[alias],
            "prob_fastest": cmp.prob_fastest[alias],
            "prob_best_per_dollar": cmp.prob_best_per_dollar[alias],
        }


HOISTED = (
    "geomean_speedup",
    "perf_per_dollar",
    "rank",
    "tied_with",
    "rank_interval",
    "prob_fastest",
    "prob_best_per_dollar",
)


def _compare_all(
    results: ResultSet,
    cells: dict[tuple[str, str], Cell],
    baseline: str,
    usd: dict[str, float | None],
    seed: int,
    categories: dict[str, str],
) -> dict[str, Comparison]:
    found = {}
    for exe in results.executables:
        cmp = _comparison(cells, results.aliases, baseline, exe, categories, usd, seed)
        if cmp is not None:
            found[exe] = cmp
    return found


def _hoist(
    entries: dict[str, dict[str, Any]],
    headline: str,
    cmp: Comparison | None,
    usd: dict[str, float | None],
) -> None:
    """The headline executable's figures at the top of each type's entry, and its Pareto
    status (pareto: true on the front, false dominated, null undecided or unpriced)."""
    for alias, entry in entries.items():
        chosen = entry["by_executable"].get(headline, {})
        for key in HOISTED:
            entry[key] = chosen.get(key, [] if key == "tied_with" else None)
        status = pareto_status(alias, usd, cmp) if cmp else None
        entry["pareto_status"] = status
        entry["pareto"] = {"front": True, "dominated": False}.get(status or "")


def _yjit_and_reference(
    entries: dict[str, dict[str, Any]],
    cells: dict[tuple[str, str], Cell],
    baseline: str,
    seed: int,
    categories: dict[str, str],
) -> None:
    for alias, entry in entries.items():
        entry["reference"] = alias == baseline
        yjit = _yjit(cells, alias, seed, categories)
        entry["yjit_speedup"] = yjit.as_json() if yjit else None
        entry["yjit_ci_method"] = yjit.method if yjit else None


def _run_facts(results: ResultSet) -> dict[str, Any]:
    facts = results.facts
    return {
        "ruby_version": _ruby_version(facts["ruby_version"]),
        "ruby_description": _one(facts["ruby_version"]),
        "ruby_bench_commit": _one(facts["ruby_bench_commit"]),
        "ruby_bench_content_id": _one(facts["ruby_bench_content_id"]),
        "settings": _one(facts["settings"]),
        "runs": [{"run_id": r.run_id, "path": str(r.path)} for r in results.runs],
        "mixed": results.mixed,
    }


def build_summary(results: ResultSet, options: Options) -> dict[str, Any]:
    baseline = options.baseline or results.aliases[0]
    if baseline not in results.aliases:
        raise ReportInputError(
            f"--baseline {baseline}: no such alias; choose one of {', '.join(results.aliases)}"
        )
    cells = build_cells(results, options.seed)
    prices, regions = resolve_prices(results, options.resolver)
    usd = {a: (p.usd_per_hour if p else None) for a, p in prices.items()}
    per_alias_cost, ledger = costs(results)
    entries = {
        a: _type_entry(results, a, prices[a], regions[a], per_alias_cost.get(a))
        for a in results.aliases
    }
    categories = benchmark_categories(results)
    comparisons = _compare_all(results, cells, baseline, usd, options.seed, categories)
    for exe, cmp in comparisons.items():
        _fill_executable(entries, cmp, baseline, exe)
    cols = matrix.columns(results, _ruby_version(results.facts["ruby_version"]))
    # By default only among columns with a comparison (a benchmark every type ran).
    offered = cols if options.headline else [c for c in cols if c.label in comparisons] or cols
    picked = matrix.choose_headline(offered, cells, options.headline)
    headline = picked[0]
    _yjit_and_reference(entries, cells, baseline, options.seed, categories)
    _hoist(entries, headline, comparisons.get(headline), usd)
    ordered = sorted(entries.values(), key=lambda e: (e["rank"] is None, e["rank"] or 0))
    rows, flags = benchmark_rows(cells, baseline, usd)
    flags += [
        {
            "kind": "warmup_trend",
            "alias": r["alias"],
            "executable": r["executable"],
            "benchmark": r["name"],
        }
        for r in rows
        if r["warmup_trend"]
    ]
    geomean_names = {
        exe: (comparisons[exe].names if exe in comparisons else []) for exe in results.executables
    }
    return {
        "format_version": FORMAT_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "baseline": baseline,
        "headline_executable": headline,
        "executables": results.executables,
        **_run_facts(results),
        "seed": options.seed,
        "bootstrap": {"replicates": N_BOOT, "min_units": BOOTSTRAP_MIN_UNITS, "level": LEVEL},
        "outlier_rule": {"min_tasks": MIN_OUTLIER_TASKS, "mads": OUTLIER_MADS},
        "geomean_benchmarks": geomean_names,
        "benchmark_categories": categories,
        "geomean_category": {
            exe: geomean_set(names, categories)[1] for exe, names in geomean_names.items()
        },
        "pairwise": {
            exe: {
                "method": c.method,
                "benchmarks": len(c.names),
                "pairs": c.pairs,
                "per_dollar": c.per_dollar_pairs,
            }
            for exe, c in comparisons.items()
        },
        "cost_ledger": ledger,
        "instance_types": ordered,
        "benchmarks": rows,
        "excluded": [vars(e) for e in results.excluded + results.failed_benchmarks],
        "flags": flags,
        "provenance": provenance(results),
        "notes": report_notes(results, cells, comparisons),
        "headline_chosen": picked[1],
        "matrix": matrix.matrix_summary(results, cells, cols, picked, options.seed, categories),
    }

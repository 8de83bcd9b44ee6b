"""What the page and the terminal show beside the statistics: each type's hardware, the
type x benchmark grid, the run's settings in words and rank labels that admit ties."""

from __future__ import annotations

from typing import Any

from cloudbench.report.merge import ResultSet


def _first(values: list[Any]) -> Any:
    return next((v for v in values if v not in (None, "", [], {})), None)


def _get(meta: dict[str, Any], *path: str) -> Any:
    value: Any = meta
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def hardware(results: ResultSet) -> dict[str, dict[str, Any]]:
    """Per alias: vCPUs, memory (GiB), arch, CPU model and region, from metadata.json."""
    out = {}
    for alias in results.aliases:
        metas = [t.metadata for t in results.tasks if t.alias == alias]
        vcpus = _first([_get(m, "cpu", "logical_cpus") or m.get("logical_cores") for m in metas])
        memory = _first([_get(m, "machine", "mem_total_bytes") for m in metas])
        out[alias] = {
            "vcpus": vcpus,
            "memory_gib": round(memory / 2**30, 1) if isinstance(memory, int | float) else None,
            "arch": _first([m.get("arch") or _get(m, "cpu", "arch") for m in metas]),
            "cpu": _first([m.get("cpu_model") or _get(m, "cpu", "model_name") for m in metas]),
            "region": _first([_get(m, "instance", "region") or m.get("region") for m in metas]),
        }
    return out


def hardware_text(hw: dict[str, Any]) -> str:
    parts = [
        f"{hw['vcpus']} vCPU" if hw["vcpus"] else None,
        f"{hw['memory_gib']:g} GiB" if hw["memory_gib"] else None,
        hw["arch"],
        hw["cpu"],
        hw["region"],
    ]
    return " · ".join(str(p) for p in parts if p) or "not recorded"


def settings_text(results: ResultSet) -> str:
    """The benchmark settings in words (never a Python repr)."""
    seen = []
    for task in results.tasks:
        bench = task.metadata.get("benchmarks")
        if not isinstance(bench, dict):
            continue
        words = [
            f"{bench.get('warmup_iterations', '?')} warm-up and "
            f"{bench.get('bench_iterations', '?')} measured iterations"
        ]
        if bench.get("min_bench_time"):
            words.append(f"at least {bench['min_bench_time']} s each")
        if bench.get("extra_args"):
            words.append("arguments " + " ".join(str(a) for a in bench["extra_args"]))
        text = ", ".join(words)
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) or "not recorded"


def rank_label(entry: dict[str, Any], summary: dict[str, Any]) -> str:
    """The type's rank interval: the central 95% of its rank over the resampling
    replicates (summary.json `rank_interval`), "2" or "1-3" (could be 1st to 3rd). Without
    replicates (a type with one task or machine) every rank is possible: "1-N"."""
    if entry["rank"] is None:
        return "-"
    interval = entry.get("rank_interval")
    if interval:
        low, high = interval
    else:
        low, high = 1, sum(1 for t in summary["instance_types"] if t["rank"] is not None)
    return str(low) if low == high else f"{low}-{high}"


GRID_TYPES = 8


def grid(summary: dict[str, Any]) -> dict[str, Any]:
    """Benchmarks x types of the headline executable: speedup, interval and a class
    ("faster"/"slower" only where the interval excludes 1, "reference" for the baseline,
    else "same")."""
    exe = summary["headline_executable"]
    aliases = [t["alias"] for t in summary["instance_types"]]
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for row in summary["benchmarks"]:
        if row["executable"] != exe or not row["speedup"]:
            continue
        s = row["speedup"]
        kind = "same"
        if row["alias"] == summary["baseline"]:
            kind = "reference"  # the baseline against itself: 1, no interval
        elif s["ci_low"] is not None and s["ci_low"] > 1:
            kind = "faster"
        elif s["ci_high"] is not None and s["ci_high"] < 1:
            kind = "slower"
        cells[(row["name"], row["alias"])] = {**s, "kind": kind}
    names = sorted({n for n, _ in cells})
    categories = summary["benchmark_categories"]
    # At most GRID_TYPES columns of types per table, so that a table fits the page.
    parts = [aliases[i : i + GRID_TYPES] for i in range(0, len(aliases), GRID_TYPES)]
    tables = [
        {
            "aliases": part,
            "rows": [
                {
                    "name": n,
                    "category": categories.get(n, "-"),
                    "cells": [cells.get((n, a)) for a in part],
                }
                for n in names
            ],
        }
        for part in parts
    ]
    return {"tables": tables, "executable": exe}

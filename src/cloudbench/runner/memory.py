"""Memory beside speed, from ruby-bench's output.json (metadata.json `memory`).

Per benchmark result ruby-bench records `maxrss` (getrusage peak, bytes), `rss` (after a
full GC at the end) and `rss_samples` (one per non-warmup iteration); with a JIT on,
`yjit_stats` (Ruby 3.1: `inline_code_size`, `outlined_code_size`; newer Rubies add
`code_region_size`, `yjit_alloc_size`, ...) or `zjit_stats`. Per column this keeps the
peak RSS, each benchmark's figures, the JIT's code-size statistics, and the overhead
against `interp` of the same Ruby where the task ran one (paired: same task, same
benchmarks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloudbench.runner.columns import Column

CODE_KEYS = ("code_size", "code_region_size", "alloc_size")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _jit_stats(result: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in ("yjit_stats", "zjit_stats"):
        stats = result.get(key)
        if isinstance(stats, dict):
            for name, value in stats.items():
                number = _int(value)
                if number is not None and any(k in str(name) for k in CODE_KEYS):
                    out[str(name)] = number
    return out


def _benchmark(result: dict[str, Any]) -> dict[str, Any]:
    samples = [s for s in result.get("rss_samples") or [] if _int(s) is not None]
    return {
        "maxrss_bytes": _int(result.get("maxrss")),
        "rss_bytes": _int(result.get("rss")),
        "rss_samples_max_bytes": max(samples) if samples else None,
        "jit_code": _jit_stats(result),
    }


def _column(raw: dict[str, Any]) -> dict[str, Any]:
    benches = {str(b): _benchmark(r) for b, r in sorted(raw.items()) if isinstance(r, dict)}
    peaks = [b["maxrss_bytes"] for b in benches.values() if b["maxrss_bytes"] is not None]
    return {"peak_rss_bytes": max(peaks) if peaks else None, "benchmarks": benches}


def _overhead(jit: dict[str, Any], interp: dict[str, Any], label: str) -> dict[str, Any]:
    ratios = {}
    for name, mine in jit["benchmarks"].items():
        base = interp["benchmarks"].get(name, {}).get("maxrss_bytes")
        if mine["maxrss_bytes"] is not None and base:
            ratios[name] = round(mine["maxrss_bytes"] / base, 4)
    peak, base_peak = jit["peak_rss_bytes"], interp["peak_rss_bytes"]
    return {
        "vs": label,
        "peak_rss_ratio": round(peak / base_peak, 4) if peak and base_peak else None,
        "peak_rss_extra_bytes": peak - base_peak if peak and base_peak else None,
        "maxrss_ratio_by_benchmark": ratios,
    }


def memory_facts(data: Any, columns: list[Column]) -> dict[str, Any]:
    """label → memory record; {} when output.json has no results."""
    raw = data.get("raw_data") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Any] = {}
    for column in columns:
        if isinstance(raw.get(column.label), dict):
            facts = {"ruby_version": column.ruby_version, "jit": column.jit}
            out[column.label] = {**facts, **_column(raw[column.label])}
    for column in columns:
        interp = next(
            (c for c in columns if c.jit == "interp" and c.ruby_version == column.ruby_version),
            None,
        )
        if column.jit != "interp" and interp and {column.label, interp.label} <= out.keys():
            out[column.label]["overhead_vs_interp"] = _overhead(
                out[column.label], out[interp.label], interp.label
            )
    return out


def memory_file(path: Path, columns: list[Column]) -> dict[str, Any]:
    try:
        return memory_facts(json.loads(path.read_text(encoding="utf-8")), columns)
    except (OSError, ValueError):
        return {}

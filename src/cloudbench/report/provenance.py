"""What ran where, per alias, from metadata.json (formats 1 to 3, see report/fields.py)."""

from __future__ import annotations

from typing import Any

from cloudbench.report.fields import fact, lookup, metadata_format
from cloudbench.report.merge import ResultSet

FIELDS = (
    "cpu_model",
    "arch",
    "kernel",
    "executor",
    "slot_mode",
    "image_id",
    "image_digest",
    "image_tag",
    "base_image",
    "ruby_description",
    "ruby_bench_commit",
    "ruby_bench_content_id",
    "ruby_bench_source",
    "cloudbench_version",
    "region",
)


def _distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in (None, "") and value not in out:
            out.append(value)
    return out


def _smt(meta: dict[str, Any]) -> bool | None:
    threads = lookup(meta, "cpu.threads_per_core")
    if isinstance(threads, int) and threads:
        return threads > 1
    logical, physical = meta.get("logical_cores"), meta.get("physical_cores")
    if isinstance(logical, int) and isinstance(physical, int) and physical:
        return logical > physical
    smt = meta.get("smt")
    return smt if isinstance(smt, bool) else None


def _checks(metas: list[dict[str, Any]]) -> dict[str, Any]:
    """Per check: how many tasks passed, failed, or did not record it."""
    names = sorted({k for m in metas for k in (m.get("checks") or {})})
    out: dict[str, Any] = {}
    for name in names:
        values = [(m.get("checks") or {}).get(name) for m in metas]
        if all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values if v is not None
        ):
            numbers = [v for v in values if v is not None]
            out[name] = {"max": max(numbers) if numbers else None}
        else:
            out[name] = {
                "passed": values.count(True),
                "failed": values.count(False),
                "absent": values.count(None),
            }
    return out


def provenance(results: ResultSet) -> list[dict[str, Any]]:
    rows = []
    for alias in results.aliases:
        metas = [t.metadata for t in results.tasks if t.alias == alias]
        row: dict[str, Any] = {"alias": alias}
        for name in FIELDS:
            row[name] = _distinct([fact(m, name) for m in metas])
        row["metadata_format"] = sorted({metadata_format(m) for m in metas})
        row["smt"] = _distinct([_smt(m) for m in metas])
        row["settings"] = _distinct(
            [str(m.get("benchmarks")) for m in metas if m.get("benchmarks")]
        )
        starts = sorted(str(m["started_at"]) for m in metas if m.get("started_at"))
        ends = sorted(str(m["finished_at"]) for m in metas if m.get("finished_at"))
        row["started_at"] = starts[0] if starts else None
        row["finished_at"] = ends[-1] if ends else None
        row["machines"] = sorted({t.machine for t in results.tasks if t.alias == alias})
        row["checks"] = _checks(metas)
        rows.append(row)
    return rows

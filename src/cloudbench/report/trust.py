"""Which conditions were verified on every task of a type: a compact row anyone can read.

Read from each kept task's metadata `checks` (any check a runner records, known or not),
plus "own core" from the slot layout (format 2/3: `cpu.slot_mode`, `slot.slots_sharing_cores`)
when no check says it, and the steal and CPU-pressure ranges. A task whose check is
`false` never gets here (load.py excludes it with the reason); a condition can still be
"not recorded" (older metadata) or "not applicable" (`null`: no container engine).
"""

from __future__ import annotations

from typing import Any

from cloudbench.report.fields import fact, lookup

LABELS = {
    "executables_verified": "YJIT/interp verified",
    "aslr_disabled": "ASLR off",
    "own_core": "own core",
    "siblings_idle": "siblings idle",
    "env_clean": "clean environment",
    "engine_off_benchmark_cpus": "engine off benchmark CPUs",
}
RANGES = ("steal_pct", "cpu_pressure_some_pct")
HEADS = {
    "verified": "✓ verified",
    "not verified": "✗ not verified",
    "partly verified": "partly verified",
    "not recorded": "not recorded",
    "not applicable": "n/a",
}


def _own_core(meta: dict[str, Any]) -> bool | None:
    """True when the slot had its core(s) to itself; None when not recorded."""
    mode, sharing = lookup(meta, "cpu.slot_mode"), lookup(meta, "slot.slots_sharing_cores")
    if not isinstance(mode, str) or not isinstance(sharing, list):
        return None
    return mode != "logical" and not sharing


def _value(meta: dict[str, Any], name: str) -> tuple[bool, Any]:
    """(recorded, value) of one boolean condition in one task's metadata."""
    checks = meta.get("checks")
    if isinstance(checks, dict) and name in checks:
        return True, checks[name]
    if name == "own_core":
        own = _own_core(meta)
        return own is not None, own
    return False, None


def _condition(metas: list[dict[str, Any]], name: str) -> dict[str, Any]:
    counts = {"verified": 0, "failed": 0, "not_applicable": 0, "not_recorded": 0}
    for meta in metas:
        recorded, value = _value(meta, name)
        key = (
            "not_recorded"
            if not recorded
            else "not_applicable"
            if value is None
            else "verified"
            if value is True
            else "failed"
        )
        counts[key] += 1
    n = len(metas)
    if counts["failed"]:
        state = "not verified"
    elif counts["not_applicable"] == n:
        state = "not applicable"
    elif counts["verified"] + counts["not_applicable"] == n:
        state = "verified"
    elif counts["not_recorded"] == n:
        state = "not recorded"
    else:
        state = "partly verified"
    return {
        "name": name,
        "label": LABELS.get(name, name.replace("_", " ")),
        "state": state,
        "tasks": n,
        **counts,
    }


def _range(metas: list[dict[str, Any]], name: str) -> dict[str, float] | None:
    values = [
        v for m in metas if isinstance(v := fact(m, name), int | float) and not isinstance(v, bool)
    ]
    return {"min": float(min(values)), "max": float(max(values))} if values else None


def _phrases(conditions: list[dict[str, Any]]) -> list[str]:
    """Conditions grouped by state: "✓ verified: ASLR off, ...", "not recorded: ..."."""
    groups: dict[str, list[str]] = {}
    for c in conditions:
        label, n = c["label"], c["tasks"]
        if c["state"] == "partly verified":
            label += f" ({c['verified'] + c['not_applicable']} of {n})"
        elif c["state"] == "not verified":
            label += f" (not on {c['failed']} of {n})"
        groups.setdefault(c["state"], []).append(label)
    return [f"{HEADS[state]}: {', '.join(groups[state])}" for state in HEADS if state in groups]


def _span(label: str, r: dict[str, float] | None) -> str:
    if r is None:
        return f"{label} not recorded"
    low, high = f"{r['min']:.1f}", f"{r['max']:.1f}"
    return f"{label} {low}%" if low == high else f"{label} {low}-{high}%"


def trust_row(metas: list[dict[str, Any]]) -> dict[str, Any]:
    """summary.json `instance_types[].trust` for one type's kept tasks."""
    found = {
        k
        for m in metas
        for k, v in (m.get("checks") or {}).items()
        if isinstance(v, bool) or v is None
    } - set(RANGES)
    names = [*LABELS, *sorted(found - set(LABELS))]
    conditions = [_condition(metas, name) for name in names] if metas else []
    row: dict[str, Any] = {"tasks": len(metas), "conditions": conditions}
    for name in RANGES:
        row[name] = _range(metas, name)
    if not metas:
        row["text"] = "no task kept"
        return row
    parts = _phrases(conditions)
    parts += [_span("steal", row["steal_pct"]), _span("CPU pressure", row["cpu_pressure_some_pct"])]
    row["text"] = " · ".join(parts)
    return row

"""Per instance type: how soon its machines benchmarked (issue 27) and on which capacity.

`time_to_first_benchmark_s` counts machines, not tasks: every task of a machine carries
the same boot block (metadata format 6), so each machine is one figure. Older metadata
has no boot block: the figure is then None (not recorded).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from cloudbench.report.load import TaskData


def _seconds(metadata: dict[str, Any]) -> float | None:
    boot = metadata.get("boot")
    value = boot.get("time_to_first_benchmark_s") if isinstance(boot, dict) else None
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def time_to_first_benchmark(tasks: Iterable[TaskData]) -> dict[str, Any] | None:
    """{median, min, max, machines} over the type's machines; None when none recorded it."""
    per_machine: dict[str, float] = {}
    for task in tasks:
        seconds = _seconds(task.metadata)
        if seconds is not None:
            per_machine.setdefault(task.machine, seconds)
    if not per_machine:
        return None
    values = sorted(per_machine.values())
    return {
        "median": round(statistics.median(values), 3),
        "min": round(values[0], 3),
        "max": round(values[-1], 3),
        "machines": len(values),
    }


def capacity(tasks: Iterable[TaskData]) -> str | None:
    """`spot`, `on-demand`, `mixed` (both ran), or None: the lifecycle each task's machine
    read from its metadata service (instance.lifecycle); not recorded locally."""
    seen = set()
    for task in tasks:
        instance = task.metadata.get("instance")
        value = instance.get("lifecycle") if isinstance(instance, dict) else None
        if isinstance(value, str) and value:
            seen.add("on-demand" if value in ("normal", "on-demand") else value)
    if not seen:
        return None
    return seen.pop() if len(seen) == 1 else "mixed"

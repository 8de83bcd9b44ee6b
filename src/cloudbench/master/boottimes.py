"""Measured VM set-up time per instance type (issue 27), for the cost plan.

At the end of every run the master appends each cloud VM's boot figures, read from the
orchestrator's machine rows (`GET /runs/{id}/machines`, `stages`), to
``boot-times.jsonl`` in CLOUDBENCH_HOME (one file across runs, whatever --state-dir each
run used). The billed set-up of a VM is from the cloud's instance start (EC2
`pendingTime`) to its first benchmark, or from its user-data start when the cloud's time
is unknown; the cost plan takes the median of a type's newest figures instead of its
assumed 15 minutes.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cloudbench.protocol import MachineOut

logger = logging.getLogger(__name__)

BOOT_HISTORY = "boot-times.jsonl"
NEWEST = 50  # figures per type: the newest, so an improved boot shows soon


@dataclass(frozen=True)
class Setup:
    seconds: float  # median billed set-up per VM
    vms: int  # how many VMs measured it


def _setup(stages: dict[str, datetime]) -> tuple[float, str] | None:
    first = stages.get("first_benchmark")
    for start in ("instance_start", "user_data_start"):
        if first is not None and start in stages:
            return (first - stages[start]).total_seconds(), start
    return None


def record_boot_times(home: Path, run_id: int, machines: list[MachineOut]) -> int:
    """Append the cloud VMs' set-up figures (those that reached a first benchmark)."""
    rows = []
    for m in machines:
        found = _setup(m.stages) if m.provider != "local" else None
        if found is None or found[0] < 0:
            continue
        start, first = m.stages.get("user_data_start"), m.stages["first_benchmark"]
        rows.append(
            json.dumps(
                {
                    "run_id": run_id,
                    "instance_id": m.instance_id,
                    "provider": m.provider,
                    "instance_type": m.instance_type,
                    "setup_s": round(found[0], 3),
                    "from": found[1],
                    "time_to_first_benchmark_s": round((first - start).total_seconds(), 3)
                    if start
                    else None,
                }
            )
        )
    if rows:
        home.mkdir(parents=True, exist_ok=True)
        with (home / BOOT_HISTORY).open("a", encoding="utf-8") as out:
            out.write("\n".join(rows) + "\n")
    return len(rows)


def measured_setup(home: Path) -> dict[tuple[str, str], Setup]:
    """(provider, instance type) → median set-up of its newest figures; {} without any."""
    try:
        lines = (home / BOOT_HISTORY).read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    per_vm: dict[tuple[Any, Any], tuple[tuple[str, str], float]] = {}
    for line in lines:
        try:
            row = json.loads(line)
            key = (str(row["provider"]), str(row["instance_type"]))
            seconds = float(row["setup_s"])
            if seconds >= 0:  # a resumed run records its VMs again: the last row counts
                per_vm[(row.get("run_id"), row.get("instance_id"))] = (key, seconds)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a torn or foreign line costs one figure, nothing else
    by_type: dict[tuple[str, str], list[float]] = {}
    for key, seconds in per_vm.values():
        by_type.setdefault(key, []).append(seconds)
    return {k: Setup(statistics.median(v[-NEWEST:]), len(v[-NEWEST:])) for k, v in by_type.items()}

"""Tasks that ran at the same time on the same CPU of one machine: never trusted.

Checked by the report itself from every task's metadata (machine, `cpuset`,
`started_at`/`finished_at`), across runners and across merged runs, so results written
before runners checked each other (issue 24: three local aliases all pinned to CPU 0,
each labelled clean) are caught as well. Both tasks of such a pair are excluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cloudbench.platform.cpus import parse_cpu_list
from cloudbench.report.load import Exclusion, TaskData


@dataclass(frozen=True)
class Span:
    task: TaskData
    cpus: frozenset[int]
    start: datetime
    end: datetime


def _span(task: TaskData) -> Span | None:
    meta = task.metadata
    cpuset, start, end = meta.get("cpuset"), meta.get("started_at"), meta.get("finished_at")
    if not all(isinstance(v, str) and v for v in (cpuset, start, end)):
        return None
    try:
        cpus = frozenset(parse_cpu_list(str(cpuset)))
        begun, ended = datetime.fromisoformat(str(start)), datetime.fromisoformat(str(end))
    except ValueError:
        return None
    if not cpus or begun.tzinfo is None or ended.tzinfo is None:
        return None
    return Span(task, cpus, begun, ended)


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def co_running(tasks: list[TaskData]) -> dict[int, Exclusion]:
    """id(task) → why it is excluded, for every task that shared a CPU with another
    task of the same machine at some moment."""
    by_machine: dict[str, list[Span]] = {}
    for task in tasks:
        span = _span(task)
        if span is not None and task.machine != "unknown":
            by_machine.setdefault(task.machine, []).append(span)
    found: dict[int, Exclusion] = {}
    for machine, spans in by_machine.items():
        spans.sort(key=lambda s: s.start)
        for i, a in enumerate(spans):
            for b in spans[i + 1 :]:
                if b.start >= a.end:
                    break
                shared = a.cpus & b.cpus
                if not shared:
                    continue
                for me, other in ((a, b), (b, a)):
                    found.setdefault(
                        id(me.task),
                        Exclusion(
                            me.task.task_id,
                            me.task.alias,
                            f"ran at the same time as task {other.task.task_id} "
                            f"({other.task.alias}) on CPU {_cpus(shared)} of {machine}: two "
                            "benchmarks on one CPU",
                        ),
                    )
    return found

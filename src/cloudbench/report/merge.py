"""Merging several runs into one report, only when they measured the same thing."""

from __future__ import annotations

from dataclasses import dataclass, field

from cloudbench.report.errors import MixedRunsError
from cloudbench.report.load import Exclusion, RunData, TaskData

EXECUTABLE_ORDER = ("interp", "yjit")


@dataclass
class ResultSet:
    runs: list[RunData]
    tasks: list[TaskData]
    aliases: list[str]
    types: dict[str, tuple[str, str]]  # alias → (provider, instance_type)
    excluded: list[Exclusion]
    failed_benchmarks: list[Exclusion]
    facts: dict[str, list[str]]  # ruby_version, ruby_bench_commit, settings → distinct values
    mixed: list[str] = field(default_factory=list)

    @property
    def executables(self) -> list[str]:
        found = {exe for task in self.tasks for exe in task.results}
        known = [e for e in EXECUTABLE_ORDER if e in found]
        return known + sorted(found - set(known))


def _ruby(task: TaskData) -> str | None:
    value = task.metadata.get("ruby_description")
    return value if isinstance(value, str) and value else None


def _settings(task: TaskData) -> str | None:
    bench = task.metadata.get("benchmarks")
    if not isinstance(bench, dict):
        return None
    keys = ("warmup_iterations", "bench_iterations", "min_bench_time", "extra_args")
    return ", ".join(f"{k}={bench.get(k)}" for k in keys)


def _commit(task: TaskData) -> str | None:
    meta = task.metadata
    value = meta.get("ruby_bench_commit") or meta.get("ruby_bench_content_id")
    return str(value) if value else None


FACTS = {"ruby_version": _ruby, "ruby_bench_commit": _commit, "settings": _settings}


def _distinct(tasks: list[TaskData], fact: str) -> list[str]:
    values = {v for t in tasks if (v := FACTS[fact](t)) is not None}
    return sorted(values)


def merge(runs: list[RunData], *, allow_mixed: bool = False) -> ResultSet:
    tasks = [t for run in runs for t in run.tasks]
    facts = {name: _distinct(tasks, name) for name in FACTS}
    mixed = []
    if len(runs) > 1:
        for name, values in facts.items():
            per_run = [set(_distinct(r.tasks, name)) for r in runs]
            if len({frozenset(v) for v in per_run if v}) > 1:
                mixed.append(f"{name} differs: {' vs '.join(values)}")
    if mixed and not allow_mixed:
        raise MixedRunsError(
            f"runs differ ({'; '.join(mixed)}); pass --allow-mixed to merge them anyway"
        )
    aliases: list[str] = []
    types: dict[str, tuple[str, str]] = {}
    for run in runs:
        aliases += [a for a in run.aliases if a not in aliases]
    for task in tasks:
        types.setdefault(task.alias, (task.provider, task.instance_type))
    excluded = [e for run in runs for e in run.excluded]
    failed = [e for run in runs for e in run.failed_benchmarks]
    return ResultSet(runs, tasks, aliases, types, excluded, failed, facts, mixed)

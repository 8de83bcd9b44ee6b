"""Merging several runs into one report, only when they measured the same thing.

Refused (one line naming the folders and values, unless --allow-mixed): a different Ruby
(`ruby_description`), ruby-bench commit, ruby-bench content id (format 2/3:
`ruby.ruby_bench_content_id`) or benchmark settings (iterations, bench time, extra args,
env). A run that did not record a fact (older metadata) is not compared on it. Different
benchmark selections merge; the report then says which benchmarks not every type ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cloudbench.report.errors import MixedRunsError
from cloudbench.report.fields import fact
from cloudbench.report.load import Exclusion, RunData, TaskData
from cloudbench.report.overlap import co_running

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
    notes: list[str] = field(default_factory=list)  # said in summary `notes`

    @property
    def executables(self) -> list[str]:
        found = {exe for task in self.tasks for exe in task.results}
        known = [e for e in EXECUTABLE_ORDER if e in found]
        return known + sorted(found - set(known))


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _ruby(task: TaskData) -> str | None:
    return _text(fact(task.metadata, "ruby_description"))


def _settings(task: TaskData) -> str | None:
    bench = task.metadata.get("benchmarks")
    if not isinstance(bench, dict):
        return None
    keys = ("warmup_iterations", "bench_iterations", "min_bench_time", "extra_args")
    text = ", ".join(f"{k}={bench.get(k)}" for k in keys)
    # env (format 2) changes what runs (RUBY_GC_*, ...); empty, it leaves the text as before.
    return f"{text}, env={bench['env']}" if bench.get("env") else text


def _commit(task: TaskData) -> str | None:
    return _text(fact(task.metadata, "ruby_bench_commit"))


def _content_id(task: TaskData) -> str | None:
    return _text(fact(task.metadata, "ruby_bench_content_id"))


FACTS = {
    "ruby_version": _ruby,
    "ruby_bench_commit": _commit,
    "ruby_bench_content_id": _content_id,
    "settings": _settings,
}
LABELS = {
    "ruby_version": "Ruby",
    "ruby_bench_commit": "ruby-bench commit",
    "ruby_bench_content_id": "ruby-bench content id",
    "settings": "benchmark settings",
}


def _distinct(tasks: list[TaskData], name: str) -> list[str]:
    values = {v for t in tasks if (v := FACTS[name](t)) is not None}
    return sorted(values)


def differences(runs: list[RunData]) -> list[str]:
    """One phrase per fact on which the runs that recorded it disagree."""
    out = []
    for name in FACTS:
        per_run = [(run, _distinct(run.tasks, name)) for run in runs]
        recorded = [(run, values) for run, values in per_run if values]
        if len({tuple(values) for _, values in recorded}) > 1:
            said = "; ".join(f"{' | '.join(values)} in {run.path}" for run, values in recorded)
            out.append(f"{LABELS[name]} differs ({said})")
    return out


def merge(runs: list[RunData], *, allow_mixed: bool = False) -> ResultSet:
    tasks = [t for run in runs for t in run.tasks]
    shared_cpu = co_running(tasks)
    tasks = [t for t in tasks if id(t) not in shared_cpu]
    facts = {name: _distinct(tasks, name) for name in FACTS}
    mixed = differences(runs) if len(runs) > 1 else []
    if mixed and not allow_mixed:
        raise MixedRunsError(
            f"runs differ: {'; '.join(mixed)}; pass --allow-mixed to merge them anyway"
        )
    aliases: list[str] = []
    types: dict[str, tuple[str, str]] = {}
    for run in runs:
        aliases += [a for a in run.aliases if a not in aliases]
    for task in tasks:
        types.setdefault(task.alias, (task.provider, task.instance_type))
    excluded = [e for run in runs for e in run.excluded] + list(shared_cpu.values())
    failed = [e for run in runs for e in run.failed_benchmarks]
    notes = []
    if shared_cpu:
        notes.append(
            f"{len(shared_cpu)} task(s) ran at the same time as another task on the "
            "same CPU of one machine and were excluded (see excluded)"
        )
    return ResultSet(runs, tasks, aliases, types, excluded, failed, facts, mixed, notes)

"""Several Rubies in containers: one ruby-bench process per (Ruby, benchmark), alternating.

An image holds one Ruby, so one ruby-bench process cannot run two Rubies' columns (the
host executor can: runner/columns.py). The task pairs them itself, as ruby-bench's
`--interleave` pairs executables within a process:

1. the first Ruby's ruby-bench lists the benchmarks the task's filters select and runs
   none (ordering.PICK_PRELUDE: names, prefixes, regexps, categories as ruby-bench means
   them);
2. that list is shuffled with the task's seed (ruby-bench's own order without a seed);
3. per benchmark, every Ruby in turn, their order reversed on every other benchmark (as
   `--interleave` does): one ruby-bench process, in that Ruby's container, runs only that
   benchmark on each of that Ruby's columns (interleaved when it has several);
4. every process's output.json is merged into the task's under the usual labels
   ("yjit@4.0"). Each (label, benchmark) result is one process's: nothing is pooled.

Every process writes to the task's log (output.txt); metadata.json `benchmark_order`
lists the processes in the order they ran (`processes`).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cloudbench.protocol import TaskAssignment
from cloudbench.runner.columns import executable_args, task_columns
from cloudbench.runner.executors.base import (
    ExecutionResult,
    ExecutionSpec,
    Executor,
    Provisioned,
    ProvisionError,
)
from cloudbench.runner.ordering import LISTED, SHUFFLED
from cloudbench.runner.output import OUT_NAME

log = logging.getLogger(__name__)

HOW = "by benchmark: one ruby-bench process per Ruby and benchmark (one image per Ruby)"


def needs_alternation(rubies: dict[str, Provisioned]) -> bool:
    """Several Rubies, one of them in an image: no single process can run them all."""
    return len(rubies) > 1 and any(p.image_id is not None for p in rubies.values())


@dataclass(frozen=True)
class Step:
    ruby: str  # as requested
    benchmark: str | None  # None: the listing
    labels: tuple[str, ...]


def plan(names: list[str], rubies: list[str], seed: int | None) -> list[tuple[str, str]]:
    """(Ruby, benchmark) in the order they run: benchmarks shuffled with the seed, the
    Rubies alternating, reversed on every other benchmark."""
    order = list(names)
    if seed is not None:
        random.Random(seed).shuffle(order)  # noqa: S311 (a reproducible order, no secret)
    steps = []
    for i, name in enumerate(order):
        turn = rubies if i % 2 == 0 else rubies[::-1]
        steps += [(ruby, name) for ruby in turn]
    return steps


# (step, its index, how many steps) before each process starts; index -1: the listing.
OnStep = Callable[[Step, int, int], None]


class Alternation:
    def __init__(
        self,
        executor: Executor,
        spec: ExecutionSpec,
        task: TaskAssignment,
        rubies: dict[str, Provisioned],
        on_step: OnStep,
    ) -> None:
        self.executor, self.spec, self.task, self.rubies = executor, spec, task, rubies
        self.on_step = on_step
        self.started = time.monotonic()
        self.steps: list[tuple[Step, ExecutionResult]] = []

    def run(self) -> ExecutionResult:
        """Every process's result as one; ProvisionError when the listing failed."""
        names = self._list()
        if names is None:
            if self._stopped():
                return self._result()
            raise ProvisionError(
                f"several Rubies in containers: listing the selected benchmarks with Ruby "
                f"{self.task.ruby_version} failed (exit {self.steps[-1][1].exit_code}; see "
                "output.txt); it needs ruby-bench's lib/benchmark_suite.rb "
                "(BenchmarkSuite#benchmarks), as at the pinned commit"
            )
        if self.spec.seed is not None:
            self._say(f"{SHUFFLED}{self.spec.seed}")
        order = plan(names, list(self.task.rubies), self.spec.seed)
        for index, (ruby, name) in enumerate(order):
            if self._stopped():
                break
            self._run(Step(ruby, name, self._labels(ruby)), index, len(order))
        merge_outputs([self._out(i) for i in range(len(self.steps))], self.spec.out_dir)
        return self._result()

    # ------------------------------------------------------------ steps
    def _list(self) -> list[str] | None:
        """The selected benchmarks' names, in the suite's order; None: the listing failed."""
        ruby = self.task.ruby_version
        seen: list[str] = []
        step = Step(ruby, None, self._labels(ruby))
        result = self._run(step, -1, 0, lambda line: seen.append(line))
        listed = [line[len(LISTED) :].split() for line in seen if line.startswith(LISTED)]
        if result.exit_code != 0 or not listed:
            log.error(
                "task %d: listing the benchmarks failed (exit %s)", self.task.id, result.exit_code
            )
            return None
        return listed[0]

    def _run(
        self, step: Step, index: int, total: int, tap: Callable[[str], None] | None = None
    ) -> ExecutionResult:
        number = len(self.steps)
        work = self.spec.work_dir / "steps" / f"{number:03d}"
        (work / "out").mkdir(parents=True, exist_ok=True)
        on_line = self.spec.on_line if tap is None else tap
        spec = replace(
            self.spec,
            provisioned=self.rubies[step.ruby],
            work_dir=work,
            out_dir=work / "out",
            executables=executable_args(self.task, self.rubies, step.ruby),
            pick=step.benchmark or "",
            seed=None,
            on_line=on_line,
            timeout=max(0.0, self.spec.timeout - (time.monotonic() - self.started)),
        )
        self.on_step(step, index, total)
        log.info(
            "task %d: ruby-bench process %d: Ruby %s, %s",
            self.task.id,
            number,
            step.ruby,
            step.benchmark or "listing the benchmarks",
        )
        result = self.executor.execute(spec)
        self.steps.append((step, result))
        return result

    def _labels(self, ruby: str) -> tuple[str, ...]:
        return tuple(c.label for c in task_columns(self.task) if c.ruby_version == ruby)

    def _out(self, number: int) -> Path:
        return self.spec.work_dir / "steps" / f"{number:03d}" / "out"

    def _stopped(self) -> bool:
        last = self.steps[-1][1]
        return self.spec.cancel.is_set() or last.timed_out or last.cancelled

    def _say(self, line: str) -> None:
        with self.spec.log_path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
        self.spec.on_line(line)

    def _result(self) -> ExecutionResult:
        results = [r for _, r in self.steps]
        runs = results[1:] or results  # the benchmark processes (the listing if none ran)
        codes = [r.exit_code for r in results]
        total = ExecutionResult(
            exit_code=next((c for c in codes if c != 0), 0),
            command=runs[0].command,
            timed_out=any(r.timed_out for r in results),
            cancelled=any(r.cancelled for r in results) or self.spec.cancel.is_set(),
            container_id=runs[0].container_id,
            duration=time.monotonic() - self.started,
            engine_affinity=_affinity([r.engine_affinity for r in results]),
            steps=results,
        )
        for r in results:
            total.environment.update(r.environment)
            total.env_dropped += [n for n in r.env_dropped if n not in total.env_dropped]
        return total

    def processes(self) -> list[dict[str, Any]]:
        """metadata.json `benchmark_order.processes`: every process, in the order it ran."""
        return [
            {
                "ruby_version": s.ruby,
                "benchmark": s.benchmark,
                "labels": list(s.labels),
                "exit_code": r.exit_code,
                "duration_seconds": round(r.duration, 3),
                "container_id": r.container_id,
                "command": r.command,
            }
            for s, r in self.steps
        ]


def _affinity(checks: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The first process's engine check, off the benchmark CPUs only if every one was."""
    if not checks or any(c is None for c in checks):
        return None
    first = dict(checks[0] or {})
    first["off_benchmark_cpus"] = all(bool((c or {}).get("off_benchmark_cpus")) for c in checks)
    first["processes_checked"] = len(checks)
    return first


def merge_outputs(dirs: list[Path], out_dir: Path, always: bool = True) -> None:
    """Every process's output.json into one (labels and benchmarks are disjoint across
    processes; `always`: even when none wrote one, so an empty selection reads as "no
    benchmark ran"); their CSVs and tables are concatenated under a comment naming each."""
    merged: dict[str, Any] = {"metadata": {}, "raw_data": {}}
    texts: dict[str, list[str]] = {"csv": [], "txt": []}
    for directory in dirs:
        path = directory / f"{OUT_NAME}.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                log.error("%s: unreadable, left out of the merge: %s", path, exc)
                continue
            merged["metadata"].update(data.get("metadata") or {})
            for label, benches in (data.get("raw_data") or {}).items():
                merged["raw_data"].setdefault(label, {}).update(benches or {})
        for ext, parts in texts.items():
            part = directory / f"{OUT_NAME}.{ext}"
            if part.is_file():
                parts.append(f"# {directory.parent.name}\n{part.read_text(errors='replace')}")
    if always or merged["raw_data"]:
        (out_dir / f"{OUT_NAME}.json").write_text(json.dumps(merged, indent=2) + "\n")
    for ext, parts in texts.items():
        if parts:
            (out_dir / f"{OUT_NAME}.{ext}").write_text("\n".join(parts))

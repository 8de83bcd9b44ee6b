"""Per-task values arranged for statistics: one Group per (alias, executable)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cloudbench.report.load import TaskData
from cloudbench.report.merge import ResultSet
from cloudbench.report.stats import Array, Group, machine_index, seed_for


@dataclass
class Cell:
    """One (alias, executable): its tasks, benchmark names and per-task medians."""

    alias: str
    executable: str
    tasks: list[TaskData]
    benchmarks: list[str]  # column order, shared by every alias for this executable
    group: Group
    maxrss: Array  # tasks x benchmarks, NaN when absent

    def column(self, name: str) -> int:
        return self._columns[name]

    @cached_property
    def _columns(self) -> dict[str, int]:
        return {name: j for j, name in enumerate(self.benchmarks)}

    def completed(self) -> frozenset[str]:
        """Benchmarks with at least one task's value."""
        return self._completed

    @cached_property
    def _completed(self) -> frozenset[str]:
        has = ~np.all(np.isnan(self.group.values), axis=0)
        return frozenset(b for b, ok in zip(self.benchmarks, has, strict=True) if ok)

    def series(self, name: str) -> list[Array]:
        return [
            t.results[self.executable][name].bench
            for t in self.tasks
            if name in t.results.get(self.executable, {})
        ]


def build_cells(results: ResultSet, seed: int) -> dict[tuple[str, str], Cell]:
    cells: dict[tuple[str, str], Cell] = {}
    for exe in results.executables:
        names = sorted({b for t in results.tasks for b in t.results.get(exe, {})})
        for alias in results.aliases:
            tasks = [t for t in results.tasks if t.alias == alias and exe in t.results]
            if tasks:
                cells[(alias, exe)] = _cell(alias, exe, tasks, names, seed)
    return cells


def _cell(alias: str, exe: str, tasks: list[TaskData], names: list[str], seed: int) -> Cell:
    values = np.full((len(tasks), len(names)), np.nan)
    maxrss = np.full_like(values, np.nan)
    for i, task in enumerate(tasks):
        for j, name in enumerate(names):
            result = task.results[exe].get(name)
            if result is not None:
                values[i, j] = result.median
                maxrss[i, j] = np.nan if result.maxrss is None else result.maxrss
    group = Group(values, machine_index([t.machine for t in tasks]), seed_for(seed, alias, exe))
    return Cell(alias, exe, tasks, names, group, maxrss)


def paired(slow: Cell, fast: Cell, seed: int) -> tuple[Group, Group, list[str]]:
    """Both executables' values on the tasks that ran both, aligned row by row."""
    common = [t for t in fast.tasks if any(t is s for s in slow.tasks)]
    names = sorted(slow.completed() & fast.completed())
    groups = []
    for cell in (slow, fast):
        rows = [next(i for i, t in enumerate(cell.tasks) if t is c) for c in common]
        cols = [cell.column(n) for n in names]
        groups.append(cell.group.values[np.ix_(rows, cols)])
    machines = machine_index([t.machine for t in common])
    pair_seed = seed_for(seed, slow.alias, "paired")
    return Group(groups[0], machines, pair_seed), Group(groups[1], machines, pair_seed), names

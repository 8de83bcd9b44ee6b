"""Splitting CPUs into disjoint groups (local runners, runner slots)."""

from __future__ import annotations

import os


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (respects cgroups/taskset, unlike os.cpu_count)."""
    return sorted(os.sched_getaffinity(0))


def split_cpus(cpus: list[int], groups: int) -> list[tuple[int, ...]]:
    """`groups` contiguous, disjoint groups of (nearly) equal size covering `cpus`.

    Contiguous so each group keeps neighbouring CPUs (often one core's siblings) together.
    """
    if not 1 <= groups <= len(cpus):
        raise ValueError(f"cannot split {len(cpus)} CPU(s) into {groups} group(s)")
    size, extra = divmod(len(cpus), groups)
    result, start = [], 0
    for i in range(groups):
        end = start + size + (1 if i < extra else 0)
        result.append(tuple(cpus[start:end]))
        start = end
    return result

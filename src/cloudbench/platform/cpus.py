"""CPU topology from sysfs, and splitting CPUs into disjoint groups (local runners, slots).

A physical core is the set of threads in `core_cpus_list` (`thread_siblings_list` on
kernels before 5.x). The master splits a machine between local runners and the runner
splits its CPUs between slots with the same reading, so neither ever splits a core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CPU_SYSFS = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class Core:
    package: int
    threads: tuple[int, ...]
    # Sibling threads this process may not use (taskset/cgroup): someone else may run there.
    foreign: tuple[int, ...] = ()


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (respects cgroups/taskset, unlike os.cpu_count)."""
    return sorted(os.sched_getaffinity(0))


def parse_cpu_list(text: str) -> set[int]:
    """sysfs/taskset list syntax: `0-3,8,10-11`."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    return cpus


def _read_int(path: Path, default: int) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return default


def _siblings(cpu: int, sysfs: Path) -> set[int]:
    topo = sysfs / f"cpu{cpu}" / "topology"
    for name in ("core_cpus_list", "thread_siblings_list"):
        try:
            return parse_cpu_list((topo / name).read_text()) | {cpu}
        except (OSError, ValueError):
            continue
    return {cpu}  # no topology exposed: every CPU counts as its own core


def read_cores(cpus: list[int] | None = None, sysfs: Path = CPU_SYSFS) -> list[Core]:
    """The physical cores among `cpus`, each with its threads that we may use."""
    cpus = allowed_cpus() if cpus is None else sorted(cpus)
    allowed, seen, cores = set(cpus), set[int](), []
    for cpu in cpus:
        if cpu in seen:
            continue
        everything = _siblings(cpu, sysfs)
        threads = everything & allowed
        seen.update(threads)
        package = _read_int(sysfs / f"cpu{cpu}" / "topology" / "physical_package_id", 0)
        cores.append(Core(package, tuple(sorted(threads)), tuple(sorted(everything - allowed))))
    return cores


def split_cpus(cpus: list[int], groups: int) -> list[tuple[int, ...]]:
    """`groups` contiguous, disjoint groups of (nearly) equal size covering `cpus`."""
    if not 1 <= groups <= len(cpus):
        raise ValueError(f"cannot split {len(cpus)} CPU(s) into {groups} group(s)")
    size, extra = divmod(len(cpus), groups)
    result, start = [], 0
    for i in range(groups):
        end = start + size + (1 if i < extra else 0)
        result.append(tuple(cpus[start:end]))
        start = end
    return result


def split_cores(cores: list[Core], groups: int) -> list[tuple[int, ...]]:
    """`groups` disjoint CPU groups made of whole cores (all their usable threads)."""
    if not 1 <= groups <= len(cores):
        raise ValueError(f"cannot split {len(cores)} core(s) into {groups} group(s)")
    parts = split_cpus(list(range(len(cores))), groups)
    return [tuple(sorted(t for i in part for t in cores[i].threads)) for part in parts]

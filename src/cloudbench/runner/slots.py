"""Slots: how many tasks this machine runs at once, and on which CPUs each one runs.

Topology comes from sysfs (platform/cpus.py): a physical core is the set of threads in
`core_cpus_list` (`thread_siblings_list` on old kernels). Slots never split a core between two
benchmarks unless `logical` asks for it, and the runner's own threads (heartbeats, uploads)
get `housekeeping` CPUs that no benchmark uses when the machine has more than one core.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from cloudbench.platform.cpus import CPU_SYSFS, Core, parse_cpu_list, read_cores
from cloudbench.protocol import SlotMode

# Topology reading lives in platform (the master splits machines between runners with it).
__all__ = ["CPU_SYSFS", "Core", "parse_cpu_list", "read_cores"]


@dataclass(frozen=True)
class Slot:
    index: int
    cpus: tuple[int, ...]
    runner_id: str
    siblings: tuple[int, ...] = ()  # every thread of the cores this slot runs on

    @property
    def cpuset(self) -> str:
        return cpu_list(self.cpus)


@dataclass(frozen=True)
class SlotPlan:
    mode: SlotMode
    groups: list[tuple[int, ...]]  # the CPUs of each slot
    siblings: list[tuple[int, ...]]  # all threads of each slot's cores
    housekeeping: tuple[int, ...]
    housekeeping_isolated: bool  # no benchmark CPU is among them
    cores: list[Core]
    note: str | None = None
    foreign: list[tuple[int, ...]] = field(default_factory=list)  # per slot, see Core

    def sharing(self, index: int) -> list[int]:
        """Other slots with a thread on this slot's cores (only `logical` makes any)."""
        mine = set(self.siblings[index])
        return [i for i, cpus in enumerate(self.groups) if i != index and mine & set(cpus)]


def cpu_list(cpus: tuple[int, ...] | list[int]) -> str:
    return ",".join(str(c) for c in cpus)


def parse_mode(spec: str | int) -> tuple[SlotMode, int | None]:
    if isinstance(spec, int) or str(spec).strip().isdigit():
        count = int(spec)
        if count < 1:
            raise ValueError("slots must be >= 1")
        return SlotMode.cores, count
    if spec == "auto":  # kept for old user-data and scripts
        return SlotMode.physical, None
    try:
        return SlotMode(spec), None
    except ValueError:
        raise ValueError(f"slots: {spec!r} is not N, physical, logical or auto") from None


def _housekeeping_cores(
    spec: str, cores: list[Core], mode: SlotMode, count: int | None
) -> tuple[list[Core], str | None]:
    """The cores given to the runner itself; none means it shares the benchmark CPUs."""
    if spec == "none":
        return [], "housekeeping not isolated (--housekeeping-cpus none)"
    if spec != "auto":
        wanted = parse_cpu_list(spec)
        chosen = [c for c in cores if wanted & set(c.threads)]
        if not chosen or not wanted <= {t for c in chosen for t in c.threads}:
            raise ValueError(f"housekeeping-cpus {spec!r} lists CPUs this runner may not use")
        return chosen, None
    if len(cores) < 2:
        return [], "one physical core: the runner shares it with the benchmark"
    if mode is SlotMode.cores and count is not None and count >= len(cores):
        return [], f"--slots {count} uses every core: the runner shares them"
    return [cores[-1]], None


def _split(cores: list[Core], count: int) -> list[list[Core]]:
    if count > len(cores):
        raise ValueError(
            f"{count} slots requested but only {len(cores)} physical core(s) are free for "
            "benchmarks; use fewer slots, --slots logical, or --housekeeping-cpus none"
        )
    size, extra = divmod(len(cores), count)
    groups, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        groups.append(cores[start:end])
        start = end
    return groups


def plan_slots(
    spec: str | int,
    housekeeping: str = "auto",
    cpus: list[int] | None = None,
    sysfs: Path = CPU_SYSFS,
) -> SlotPlan:
    mode, count = parse_mode(spec)
    cores = read_cores(cpus, sysfs)
    kept, note = _housekeeping_cores(housekeeping, cores, mode, count)
    bench = [c for c in cores if c not in kept]
    if not bench:
        raise ValueError("housekeeping-cpus leaves no core for benchmarks")
    groups: list[tuple[int, ...]]
    if mode is SlotMode.physical:
        # One slot per core, pinned to its first thread: the siblings stay idle.
        groups = [(c.threads[0],) for c in bench]
        siblings = [c.threads for c in bench]
    elif mode is SlotMode.logical:
        groups = [(t,) for c in bench for t in c.threads]
        siblings = [c.threads for c in bench for _ in c.threads]
    else:
        parts = _split(bench, count or 1)
        groups = [tuple(t for c in part for t in c.threads) for part in parts]
        siblings = list(groups)
    hk = tuple(t for c in kept for t in c.threads)
    if not kept:  # shares: the runner may run anywhere it is allowed to
        hk = tuple(t for c in cores for t in c.threads)
    foreign = [_foreign(bench, group) for group in groups]
    return SlotPlan(mode, groups, siblings, hk, bool(kept), cores, note, foreign)


def _foreign(cores: list[Core], group: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(t for c in cores if set(c.threads) & set(group) for t in c.foreign)


def make_slots(plan: SlotPlan, host: str | None = None) -> list[Slot]:
    host = (host or socket.gethostname()).split(".")[0] or "host"
    return [
        Slot(index=i, cpus=group, runner_id=f"{host}-{i}-{secrets.token_hex(4)}", siblings=sib)
        for i, (group, sib) in enumerate(zip(plan.groups, plan.siblings, strict=True))
    ]


def topology_facts(plan: SlotPlan) -> dict[str, object]:
    packages = sorted({c.package for c in plan.cores})
    threads = max((len(c.threads) for c in plan.cores), default=1)
    return {
        "sockets": len(packages),
        "physical_cores": len(plan.cores),
        "logical_cpus": sum(len(c.threads) for c in plan.cores),
        "threads_per_core": threads,
        "slot_mode": plan.mode.value,
        "slot_count": len(plan.groups),
        "slot_cpusets": [cpu_list(g) for g in plan.groups],
        "housekeeping": {
            "cpus": cpu_list(plan.housekeeping),
            "isolated": plan.housekeeping_isolated,
            "note": plan.note,
            # The engine's processes are read back per task: execution.engine_affinity.
            "covers": "the runner process and its threads",
        },
    }

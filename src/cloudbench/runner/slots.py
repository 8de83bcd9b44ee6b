"""Slots: how many tasks this machine runs at once, and on which CPUs each one runs."""

from __future__ import annotations

import platform
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from cloudbench.platform.cpus import allowed_cpus, split_cpus

CPU_SYSFS = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class Slot:
    index: int
    cpus: tuple[int, ...]
    runner_id: str

    @property
    def cpuset(self) -> str:
        return ",".join(str(c) for c in self.cpus)


def _parse_cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    return cpus


def physical_cores(cpus: list[int] | None = None, sysfs: Path = CPU_SYSFS) -> list[tuple[int, ...]]:
    """Groups of hyperthread siblings among `cpus`, one group per physical core."""
    cpus = allowed_cpus() if cpus is None else cpus
    allowed, seen, cores = set(cpus), set[int](), []
    for cpu in cpus:
        if cpu in seen:
            continue
        siblings_file = sysfs / f"cpu{cpu}" / "topology" / "thread_siblings_list"
        try:
            siblings = _parse_cpu_list(siblings_file.read_text()) & allowed
        except (OSError, ValueError):
            siblings = {cpu}
        siblings.add(cpu)
        seen.update(siblings)
        cores.append(tuple(sorted(siblings)))
    return cores


def cpu_groups(spec: str | int, cpus: list[int] | None = None) -> list[tuple[int, ...]]:
    """CPU sets for the slots: one per logical CPU, one per physical core, or N groups."""
    cpus = allowed_cpus() if cpus is None else cpus
    if spec == "physical":
        # One slot per core, pinned to a single thread so no two slots share siblings.
        return [core[:1] for core in physical_cores(cpus)]
    if spec == "auto":
        return [(c,) for c in cpus]
    count = int(spec)
    if count < 1:
        raise ValueError("slots must be >= 1")
    if count > len(cpus):
        raise ValueError(f"{count} slots requested but only {len(cpus)} CPUs are available")
    return split_cpus(cpus, count)


def make_slots(spec: str | int, host: str | None = None) -> list[Slot]:
    host = (host or socket.gethostname()).split(".")[0] or "host"
    return [
        Slot(index=i, cpus=group, runner_id=f"{host}-{i}-{secrets.token_hex(4)}")
        for i, group in enumerate(cpu_groups(spec))
    ]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, object]:
    cpus = allowed_cpus()
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "logical_cores": len(cpus),
        "physical_cores": len(physical_cores(cpus)),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "arch": platform.machine(),
    }

"""Machine state next to every result: kernel, THP, cpufreq, clocksource, and task noise."""

from __future__ import annotations

import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

from cloudbench.runner.cpuinfo import NOT_EXPOSED

PROC = Path("/proc")
SYS = Path("/sys")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _selected(text: str | None) -> str:
    """`always [madvise] never` -> `madvise`."""
    if text is None:
        return NOT_EXPOSED
    match = re.search(r"\[([^\]]+)\]", text)
    return match[1] if match else text


def cpufreq(sys: Path = SYS) -> dict[str, str]:
    cpu = sys / "devices" / "system" / "cpu"
    policy = cpu / "cpu0" / "cpufreq"
    boost = _read(cpu / "cpufreq" / "boost")
    if boost is None:  # intel_pstate inverts it
        no_turbo = _read(cpu / "intel_pstate" / "no_turbo")
        boost = None if no_turbo is None else ("0" if no_turbo == "1" else "1")
    return {
        "driver": _read(policy / "scaling_driver") or NOT_EXPOSED,
        "governor": _read(policy / "scaling_governor") or NOT_EXPOSED,
        "boost": {"1": "on", "0": "off"}.get(boost or "", NOT_EXPOSED),
    }


def mem_total_bytes(proc: Path = PROC) -> int | None:
    for line in (_read(proc / "meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def vulnerabilities(sys: Path = SYS) -> dict[str, str]:
    folder = sys / "devices" / "system" / "cpu" / "vulnerabilities"
    try:
        files = sorted(folder.iterdir())
    except OSError:
        return {}
    return {f.name: _read(f) or "" for f in files}


def machine_state(proc: Path = PROC, sys: Path = SYS) -> dict[str, object]:
    clock = sys / "devices" / "system" / "clocksource" / "clocksource0" / "current_clocksource"
    return {
        "kernel_release": platform.release(),
        "kernel_version": platform.version(),
        "kernel_cmdline": _read(proc / "cmdline") or NOT_EXPOSED,
        "transparent_hugepages": _selected(
            _read(sys / "kernel" / "mm" / "transparent_hugepage" / "enabled")
        ),
        "thp_defrag": _selected(_read(sys / "kernel" / "mm" / "transparent_hugepage" / "defrag")),
        "cpufreq": cpufreq(sys),
        "clocksource": _read(clock) or NOT_EXPOSED,
        "mem_total_bytes": mem_total_bytes(proc),
        "vulnerabilities": vulnerabilities(sys),
    }


# ---------------------------------------------------------------- noise during a task


@dataclass(frozen=True)
class NoiseSample:
    steal: int  # jiffies, summed over the slot's CPUs
    total: int
    pressure_some_us: int | None
    pressure_full_us: int | None
    at: float = 0.0  # time.monotonic() when read


def _cpu_times(proc: Path, cpus: tuple[int, ...]) -> tuple[int, int]:
    wanted = {f"cpu{c}" for c in cpus}
    steal = total = 0
    for line in (_read(proc / "stat") or "").splitlines():
        parts = line.split()
        if parts and parts[0] in wanted:
            values = [int(v) for v in parts[1:]]
            # guest time is already counted in user: leave it out of the total
            total += sum(values[:8])
            steal += values[7] if len(values) > 7 else 0
    return steal, total


def _pressure(proc: Path) -> tuple[int | None, int | None]:
    found: dict[str, int] = {}
    for line in (_read(proc / "pressure" / "cpu") or "").splitlines():
        kind, _, rest = line.partition(" ")
        match = re.search(r"total=(\d+)", rest)
        if match:
            found[kind] = int(match[1])
    return found.get("some"), found.get("full")


def sample_noise(cpus: tuple[int, ...], proc: Path = PROC) -> NoiseSample:
    steal, total = _cpu_times(proc, cpus)
    some, full = _pressure(proc)
    return NoiseSample(steal, total, some, full, time.monotonic())


def load_average(proc: Path = PROC) -> list[float] | None:
    parts = (_read(proc / "loadavg") or "").split()
    try:
        return [float(p) for p in parts[:3]] if len(parts) >= 3 else None
    except ValueError:
        return None


def noise_between(
    start: NoiseSample, end: NoiseSample, seconds: float | None = None
) -> dict[str, object]:
    """Steal on the slot's CPUs and CPU pressure between two samples.

    `seconds` is the wall time between them (default: their own clocks). Pressure is the
    kernel's machine-wide PSI `some` line: the share of that time during which at least
    one runnable task anywhere on the machine waited for a CPU. The kernel keeps it at or
    below wall time; a share is still capped at 100 (clock granularity).
    """
    total = end.total - start.total
    steal_pct = round(100.0 * (end.steal - start.steal) / total, 3) if total > 0 else None
    window = seconds if seconds is not None else end.at - start.at

    def delta(a: int | None, b: int | None) -> int | None:
        return None if a is None or b is None else b - a

    some = delta(start.pressure_some_us, end.pressure_some_us)
    pct = None
    if some is not None and window > 0:
        pct = round(min(100.0, max(0.0, 100.0 * some / (window * 1e6))), 3)
    return {
        "steal_pct": steal_pct,
        "cpu_pressure_some_us": some,
        "cpu_pressure_full_us": delta(start.pressure_full_us, end.pressure_full_us),
        "cpu_pressure_some_pct": pct,
        "cpu_pressure_scope": "machine",
        "window_seconds": round(window, 3),
    }

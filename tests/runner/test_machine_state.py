"""Machine state and task noise from fake /proc and /sys trees, plus who ran alongside."""

from __future__ import annotations

from pathlib import Path

from cloudbench.runner.concurrency import Concurrency
from cloudbench.runner.machine_state import (
    load_average,
    machine_state,
    noise_between,
    sample_noise,
)
from cloudbench.runner.metadata import TaskFacts


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _stat(steal0: int, steal1: int, busy: int) -> str:
    # user nice system idle iowait irq softirq steal guest guest_nice
    return (f"cpu  1 0 0 0 0 0 0 0 0 0\ncpu0 {busy} 0 0 100 0 0 0 {steal0} 0 0\n"
            f"cpu1 {busy} 0 0 100 0 0 0 {steal1} 0 0\n")  # fmt: skip


def test_state_from_sysfs(tmp_path: Path) -> None:
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    _write(proc, "cmdline", "root=/dev/nvme0n1p1 mitigations=auto\n")
    _write(proc, "meminfo", "MemTotal:        3906960 kB\nMemFree: 1 kB\n")
    _write(sys, "kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n")
    _write(sys, "devices/system/cpu/cpu0/cpufreq/scaling_driver", "intel_pstate\n")
    _write(sys, "devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n")
    _write(sys, "devices/system/cpu/intel_pstate/no_turbo", "1\n")
    _write(sys, "devices/system/clocksource/clocksource0/current_clocksource", "kvm-clock\n")
    _write(sys, "devices/system/cpu/vulnerabilities/meltdown", "Not affected\n")
    state = machine_state(proc, sys)
    assert state["kernel_cmdline"] == "root=/dev/nvme0n1p1 mitigations=auto"
    assert state["transparent_hugepages"] == "madvise" and state["thp_defrag"] == "not exposed"
    assert state["cpufreq"] == {"driver": "intel_pstate", "governor": "performance",
                                "boost": "off"}  # fmt: skip
    assert state["clocksource"] == "kvm-clock" and state["mem_total_bytes"] == 3906960 * 1024
    assert state["vulnerabilities"] == {"meltdown": "Not affected"}


def test_steal_and_pressure_deltas_for_the_slot_cpus(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _write(proc, "stat", _stat(0, 0, 100))
    _write(proc, "pressure/cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n"
                                 "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")  # fmt: skip
    _write(proc, "loadavg", "0.50 0.40 0.30 1/200 1234\n")
    start = sample_noise((0,), proc)
    _write(proc, "stat", _stat(10, 50, 190))  # cpu0: +90 busy, +10 steal; cpu1 not ours
    _write(proc, "pressure/cpu", "some avg10=1.00 avg60=0.00 avg300=0.00 total=501000\n"
                                 "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")  # fmt: skip
    noise = noise_between(start, sample_noise((0,), proc), seconds=10.0)
    assert noise["steal_pct"] == 10.0  # 10 of 100 jiffies on cpu0
    assert noise["cpu_pressure_some_us"] == 500000 and noise["cpu_pressure_some_pct"] == 5.0
    assert load_average(proc) == [0.5, 0.4, 0.3]
    assert noise_between(start, start, 1.0)["steal_pct"] is None  # no time passed


def test_concurrent_tasks_and_siblings_idle() -> None:
    c = Concurrency()
    c.begin(0, 11)
    c.begin(1, 12)  # slot 1 shares slot 0's core in logical mode
    assert c.end(1, 12) == [(0, 11)]
    c.begin(2, 13)
    assert c.end(0, 11) == [(1, 12), (2, 13)]
    assert c.end(2, 13) == [(0, 11)]  # 13 started while 11 still ran
    c.begin(0, 14)
    assert c.end(0, 14) == []  # alone: nothing else was running
    shared = TaskFacts(started_at="t", concurrent=[(1, 12)], sharing_slots=[1])
    apart = TaskFacts(started_at="t", concurrent=[(2, 13)], sharing_slots=[1])
    assert not shared.siblings_idle and apart.siblings_idle
    unseen = TaskFacts(started_at="t", foreign_siblings=[2])
    assert not unseen.siblings_idle  # a thread we may not use: idle is not verified

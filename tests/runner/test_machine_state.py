"""Machine state and task noise from fake /proc and /sys trees, plus who ran alongside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloudbench.runner.machine_state import (
    load_average,
    machine_state,
    noise_between,
    sample_noise,
)
from cloudbench.runner.metadata import TaskFacts
from tests.cpus import leased


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _stat(steal0: int, steal1: int, busy: int) -> str:
    # user nice system idle iowait irq softirq steal guest guest_nice
    return (
        f"cpu  1 0 0 0 0 0 0 0 0 0\ncpu0 {busy} 0 0 100 0 0 0 {steal0} 0 0\n"
        f"cpu1 {busy} 0 0 100 0 0 0 {steal1} 0 0\n"
    )


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
    assert state["cpufreq"] == {"driver": "intel_pstate", "governor": "performance", "boost": "off"}
    assert state["clocksource"] == "kvm-clock" and state["mem_total_bytes"] == 3906960 * 1024
    assert state["vulnerabilities"] == {"meltdown": "Not affected"}


def test_steal_and_pressure_deltas_for_the_slot_cpus(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _write(proc, "stat", _stat(0, 0, 100))
    _write(
        proc,
        "pressure/cpu",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    )
    _write(proc, "loadavg", "0.50 0.40 0.30 1/200 1234\n")
    start = sample_noise((0,), proc)
    _write(proc, "stat", _stat(10, 50, 190))  # cpu0: +90 busy, +10 steal; cpu1 not ours
    _write(
        proc,
        "pressure/cpu",
        "some avg10=1.00 avg60=0.00 avg300=0.00 total=501000\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    )
    noise = noise_between(start, sample_noise((0,), proc), seconds=10.0)
    assert noise["steal_pct"] == 10.0  # 10 of 100 jiffies on cpu0
    assert noise["cpu_pressure_some_us"] == 500000 and noise["cpu_pressure_some_pct"] == 5.0
    assert load_average(proc) == [0.5, 0.4, 0.3]
    assert noise_between(start, start, 1.0)["steal_pct"] is None  # no time passed


def test_pressure_share_is_of_the_samples_own_window_and_never_above_100(
    tmp_path: Path,
) -> None:
    proc = tmp_path / "proc"
    _write(proc, "stat", _stat(0, 0, 100))
    _write(proc, "pressure/cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    start = sample_noise((0,), proc)
    # 3 s of stall in what the benchmark called a 1 s run (the samples were 2 s apart
    # or more): the old formula said 300 %.
    _write(proc, "pressure/cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=3000000\n")
    end = sample_noise((0,), proc)
    noise = noise_between(start, end, seconds=1.0)
    assert noise["cpu_pressure_some_pct"] == 100.0 and noise["cpu_pressure_scope"] == "machine"
    own_clock = noise_between(start, end)  # the samples' own monotonic clock
    assert own_clock["window_seconds"] == round(end.at - start.at, 3)
    assert own_clock["cpu_pressure_some_pct"] == 100.0  # microseconds apart, capped


def _facts(
    concurrent: list[dict[str, Any]], pinned: list[str], foreign_siblings: list[int] | None = None
) -> TaskFacts:
    seen = {"cpus": "0,1", "pinned": [{"pid": 9, "cpus_allowed": c} for c in pinned]}
    return TaskFacts(
        started_at="t",
        concurrent=concurrent,
        seen_on_cpus=seen,
        lease={"cpus": [0]},
        foreign_siblings=foreign_siblings or [],
    )


def test_own_core_and_siblings_idle_come_from_what_was_seen() -> None:
    assert _facts([], []).own_core and _facts([], []).siblings_idle
    other = {"task_id": 12, "cpus": [0], "same_cpus": True, "shares_cores": True}
    assert not _facts([other], []).own_core and not _facts([other], []).siblings_idle
    sibling = {"task_id": 13, "cpus": [1], "same_cpus": False, "shares_cores": True}
    assert _facts([sibling], []).own_core and not _facts([sibling], []).siblings_idle
    apart = {"task_id": 14, "cpus": [2], "same_cpus": False, "shares_cores": False}
    assert _facts([apart], []).siblings_idle  # another core: concurrent, not on ours
    assert not _facts([], ["0"]).own_core  # a process pinned to our CPU ran
    assert _facts([], ["1"]).own_core and not _facts([], ["1"]).siblings_idle
    assert not _facts([], [], foreign_siblings=[2]).siblings_idle  # not ours to watch
    assert not TaskFacts(started_at="t").own_core  # never watched: not verified


def test_cpu_watch_sees_a_pinned_outsider_but_not_the_task_or_kernel_threads() -> None:
    """Real /proc, real processes: two busy loops pinned to one CPU, one in the task's
    session (the benchmark) and one not (someone's `taskset`)."""
    import os
    import shlex
    import shutil
    import subprocess
    import time

    from cloudbench.runner.cpuwatch import CpuWatch

    cpu = min(os.sched_getaffinity(0))
    # Busy until it has had 0.3 s of CPU (or 5 s went by: a loaded test machine).
    loop = (
        "cpu = -> { Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) }; "
        "t = Time.now; 1 while cpu.() < 0.3 && Time.now - t < 5"
    )
    busy = [shutil.which("ruby") or "ruby", "--disable-gems", "-e", loop]
    watch = CpuWatch(frozenset({cpu}), interval=0.2)
    pinned = ["taskset", "-c", str(cpu), *busy]
    # The CPU's lease, as a benchmark holds it: runners of other tests wait, not share.
    with leased((cpu,), "cpuwatch"):
        watch.start("test-cpuwatch")
        task = subprocess.Popen(pinned, start_new_session=True)
        # Not a child of this process (the watch leaves out what its runner started itself):
        # started by a shell that exits at once, as a user's `taskset ... &` would be.
        shell = f"{shlex.join(pinned)} >/dev/null & echo $!"
        started = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, check=True)
        outsider = int(started.stdout)
        task.wait(timeout=30)
        while os.path.exists(f"/proc/{outsider}") and "Z" not in _state(outsider):
            time.sleep(0.05)
        watch.stop()
    report = watch.report(session=task.pid, container_id=None)
    assert report["samples"] >= 2 and report["own_session"] == task.pid
    # (Other benchmarks pinned there by tests running in parallel are rightly listed too.)
    (seen,) = [p for p in report["pinned"] if p["pid"] == outsider]
    assert seen["cpus_allowed"] == str(cpu) and seen["cpu_seconds"] > 0, report
    listed = report["pinned"] + report["floating"]
    assert task.pid not in {p["pid"] for p in listed}
    assert not any(p["comm"].startswith(("kworker", "ksoftirqd", "migration")) for p in listed)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_cpu_watch_sees_a_pinned_job_that_lives_between_two_full_reads() -> None:
    """Real /proc: a short `taskset` job (0.1 s of CPU) starts after the lease and ends
    long before the next full read of /proc (every 30 s here): it is still seen, with its
    CPU time, and so is one started between the lease and the watch's start."""
    import os
    import shlex
    import shutil
    import subprocess
    import time

    from cloudbench.runner.cpuwatch import CpuWatch

    cpu = min(os.sched_getaffinity(0))
    loop = ("cpu = -> { Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) }; "
            "t = Time.now; 1 while cpu.() < 0.1 && Time.now - t < 5")  # fmt: skip
    pinned = ["taskset", "-c", str(cpu), shutil.which("ruby") or "ruby", "--disable-gems",
              "-e", loop]  # fmt: skip
    # Not children of this process (the watch leaves out what its runner started itself).
    start = f"{shlex.join(pinned)} >/dev/null & echo $!"

    def outsider() -> int:
        run = subprocess.run(["sh", "-c", start], capture_output=True, text=True, check=True)
        return int(run.stdout)

    def ended(pid: int) -> None:
        while os.path.exists(f"/proc/{pid}") and "Z" not in _state(pid):
            time.sleep(0.02)

    leased = time.time()
    early = outsider()  # between the lease and the watch's start: counted whole
    watch = CpuWatch(frozenset({cpu}), interval=30)
    watch.start("test-cpuwatch", since=leased)
    ended(early)
    # After the first full read; reaped by its own shell (gone from /proc) when this returns.
    waited = f"(sleep 0.1; {shlex.join(pinned)} >/dev/null & echo $!; wait) &"
    late = int(subprocess.run(["sh", "-c", waited], capture_output=True, text=True).stdout)
    assert not os.path.exists(f"/proc/{late}")
    watch.stop()
    report = watch.report(session=None, container_id=None)
    assert report["samples"] == 2, report  # the start's read and the stop's: none between
    pinned_pids = {p["pid"]: p for p in report["pinned"]}
    for pid in (early, late):
        assert pid in pinned_pids and pinned_pids[pid]["cpu_seconds"] > 0, (pid, report)
        assert pinned_pids[pid]["cpus_allowed"] == str(cpu)


def test_cpu_watch_reads_young_processes_pinned_elsewhere_or_unpinned_only_twice(
    monkeypatch: Any,
) -> None:
    """Real /proc: young processes allowed everywhere (or pinned to another CPU) are read
    twice at young steps, then only at full reads; one pinned onto the watched CPU is read
    at every young step. (A busy machine starts hundreds of young processes per task.)"""
    import os
    import subprocess
    import time

    from cloudbench.runner import cpuwatch

    reads: dict[int, int] = {}
    real = cpuwatch._read_stat

    def counted(pid_dir: Path) -> Any:
        pid = int(pid_dir.name)
        reads[pid] = reads.get(pid, 0) + 1
        return real(pid_dir)

    monkeypatch.setattr(cpuwatch, "_read_stat", counted)
    cpus = sorted(os.sched_getaffinity(0))
    watch = cpuwatch.CpuWatch(frozenset({cpus[-1]}), interval=0.5, young_interval=0.05)
    watch.start("test-cpuwatch")
    free = [subprocess.Popen(["sleep", "5"]) for _ in range(10)]
    pinned = subprocess.Popen(["taskset", "-c", str(cpus[-1]), "sleep", "5"])
    time.sleep(1.2)  # ~24 young steps, 2 full reads
    watch.stop()
    for proc in [*free, pinned]:
        proc.kill()
        proc.wait()
    assert all(reads.get(p.pid, 0) <= 6 for p in free), {p.pid: reads.get(p.pid) for p in free}
    assert reads[pinned.pid] >= 15, reads[pinned.pid]

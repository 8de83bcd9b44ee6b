"""Who else ran on a slot's CPUs during a task, as the kernel tells it (/proc).

A thread samples every process while the benchmark runs: its CPU time (utime+stime),
the CPU it last ran on (`processor` in /proc/PID/stat) and the CPUs it may run on
(`Cpus_allowed_list`). Left out: kernel threads (per-CPU kworkers run everywhere), the
task's own processes (the benchmark's session; in containers its cgroup or the
descendants of its conmon/shim), and what this runner started itself or the engine's
per-container helpers (`checks.engine_off_benchmark_cpus` reads where those run).

A process that used CPU time while restricted to CPUs that include a watched one, and
last seen on one of them, is *pinned* there: someone put work on these CPUs on purpose
(another benchmark, a `taskset`). Processes allowed everywhere that the scheduler put on
these CPUs for a while are *floating*; they are recorded, with their CPU seconds, but do
not fail a check (without isolated CPUs the scheduler may always do that).

Every process is read every `interval`; processes started during the task (and pids not
seen before) every `young_interval`, so a short job (a `taskset` run of a fraction of a
second) is seen while it lives: only one that starts and ends within `young_interval`
goes unseen. A young process read twice that is not pinned onto a watched CPU (allowed
everywhere, or pinned elsewhere) is then read every `interval` only: a busy machine
starts hundreds (200 young processes read at every young step cost a sixth of a core).
The task's interval starts when it took its CPUs (`since`), not when the watch started:
what was born in between counts whole.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudbench.platform.cpus import parse_cpu_list

PROC = Path("/proc")
INTERVAL = 0.5
YOUNG_INTERVAL = 0.05  # processes born during the task: a /proc listing and their stat
PF_KTHREAD = 0x00200000
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MAX_LISTED = 20
# A container's helpers on the host (engine_off_benchmark_cpus reads where they run).
ENGINE_HELPERS = frozenset(
    {
        "conmon",
        "containerd-shim",
        "containerd-shim-runc-v2",
        "runc",
        "crun",
        "slirp4netns",
        "pasta",
        "rootlessport",
        "rootlessport-child",
    }
)


@dataclass
class _Seen:
    comm: str
    start_ticks: int  # with the pid, one process (pids are reused)
    sid: int
    allowed: frozenset[int]
    first_ticks: int
    last_ticks: int
    on_watched_ticks: int = 0
    cgroup: str | None = None
    runner_child: bool = False  # started by this runner (its engine client, helpers)
    ancestors: frozenset[int] = frozenset()


@dataclass
class _Stat:
    comm: str
    ppid: int
    sid: int
    flags: int
    ticks: int
    processor: int
    start_ticks: int


def _read_stat(pid_dir: Path) -> _Stat | None:
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:
        return None
    comm = text[text.find("(") + 1 : text.rfind(")")]
    parts = text[text.rfind(")") + 2 :].split()
    try:  # fields after comm start at field 3 (state)
        return _Stat(
            comm,
            int(parts[1]),
            int(parts[3]),
            int(parts[6]),
            int(parts[11]) + int(parts[12]),
            int(parts[36]),
            int(parts[19]),
        )
    except (IndexError, ValueError):
        return None


def _allowed(pid_dir: Path) -> frozenset[int] | None:
    try:
        for line in (pid_dir / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return frozenset(parse_cpu_list(line.split(":", 1)[1]))
    except (OSError, ValueError):
        return None
    return None


def _cgroup(pid_dir: Path) -> str:
    try:
        return (pid_dir / "cgroup").read_text()
    except OSError:
        return ""


def _online(proc: Path) -> frozenset[int]:
    """Every online CPU of the machine (not this runner's own, pinned, affinity)."""
    try:
        text = (proc.parent / "sys" / "devices" / "system" / "cpu" / "online").read_text()
        return frozenset(parse_cpu_list(text))
    except (OSError, ValueError):
        return frozenset(range(os.cpu_count() or 1))


def _boot_ticks(proc: Path) -> int:
    try:
        return int(float((proc / "uptime").read_text().split()[0]) * CLK_TCK)
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class CpuWatch:
    """Samples /proc from `start` to `stop` for processes on `cpus`."""

    cpus: frozenset[int]
    interval: float = INTERVAL
    proc: Path = PROC
    young_interval: float = YOUNG_INTERVAL
    samples: int = 0
    _seen: dict[tuple[int, int], _Seen] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _start_ticks: int = 0
    _online: frozenset[int] = frozenset()
    _old: set[int] = field(default_factory=set)  # started before the task: full reads only
    _settled: set[int] = field(default_factory=set)  # young, not pinned here: full reads only
    _reads: dict[tuple[int, int], int] = field(default_factory=dict)  # young -> times read
    _parents: dict[int, int] = field(default_factory=dict)

    def start(self, name: str, since: float | None = None) -> None:
        """Watch from now; processes started after `since` (time.time(), the lease) count
        whole, what ran before only from now."""
        ago = max(0.0, time.time() - since) if since is not None else 0.0
        # A tick early: start times and uptime are whole ticks, each rounded down.
        self._start_ticks = _boot_ticks(self.proc) - math.ceil(ago * CLK_TCK) - 1
        self._online = _online(self.proc) | self.cpus
        self._sample()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        step = min(self.young_interval, self.interval)
        every, tick = max(1, round(self.interval / step)), 0
        while not self._stop.wait(step):
            tick += 1
            self._sample(full=tick % every == 0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sample()

    def _sample(self, full: bool = True) -> None:
        """Every process (`full`), else those not known to predate the task."""
        me = os.getpid()
        try:
            pids = [int(name) for name in os.listdir(self.proc) if name.isdigit()]
        except OSError:
            return
        if full:
            self.samples += 1
            self._parents = {}
        stats = {}
        for pid in pids:
            if pid != me and (full or (pid not in self._old and pid not in self._settled)):
                stats[pid] = (self.proc / str(pid), _read_stat(self.proc / str(pid)))
        self._parents.update({pid: st.ppid for pid, (_p, st) in stats.items() if st})
        for pid, (pid_dir, stat) in stats.items():
            if stat is None:
                continue
            if stat.start_ticks < self._start_ticks or stat.flags & PF_KTHREAD:
                self._old.add(pid)
            else:
                self._old.discard(pid)  # a reused pid
            if not stat.flags & PF_KTHREAD:
                self._observe(pid, pid_dir, stat, _ancestors(pid, self._parents))
                if pid not in self._old:
                    self._settle(pid, pid_dir, stat)

    def _settle(self, pid: int, pid_dir: Path, stat: _Stat) -> None:
        """Young and read twice (a `taskset` pins before it execs): unless pinned onto a
        watched CPU, the full reads follow it from now on (and would see a later pinning)."""
        key = (pid, stat.start_ticks)
        self._reads[key] = reads = self._reads.get(key, 0) + 1
        if reads < 2:
            self._settled.discard(pid)  # new, or a reused pid
            return
        seen = self._seen.get((pid, stat.start_ticks))
        allowed = seen.allowed if seen is not None else _allowed(pid_dir)
        if allowed is None:
            return
        if allowed & self.cpus and not self._online <= allowed:
            self._settled.discard(pid)
        else:
            self._settled.add(pid)

    def _observe(self, pid: int, pid_dir: Path, stat: _Stat, ancestors: frozenset[int]) -> None:
        seen = self._seen.get((pid, stat.start_ticks))
        if seen is None:
            # Born during the task: all its CPU time is; else only what follows.
            base = 0 if stat.start_ticks >= self._start_ticks else stat.ticks
            if stat.processor not in self.cpus and stat.ticks == base:
                return  # nothing to learn yet; read again at the next sample
            allowed = _allowed(pid_dir)
            if allowed is None:
                return
            seen = _Seen(stat.comm, stat.start_ticks, stat.sid, allowed, base, base)
            self._seen[(pid, stat.start_ticks)] = seen
        seen.ancestors |= ancestors
        seen.runner_child = seen.runner_child or os.getpid() in ancestors
        delta = stat.ticks - seen.last_ticks
        if delta > 0 and stat.processor in self.cpus:
            seen.allowed = _allowed(pid_dir) or seen.allowed
            seen.on_watched_ticks += delta
            if seen.cgroup is None:
                seen.cgroup = _cgroup(pid_dir)
        seen.last_ticks = stat.ticks

    def report(
        self,
        session: int | None,
        container_id: str | None,
        helper: int | None = None,
        more: Sequence[tuple[int | None, str | None, int | None]] = (),
    ) -> dict[str, Any]:
        """What was seen on the CPUs, without the task's own processes: the benchmark's
        `session` (host), or the container's cgroup or descendants of its `helper`; `more`:
        the same for the task's other processes (several Rubies: runner/alternate.py)."""
        pinned: list[dict[str, Any]] = []
        floating: list[dict[str, Any]] = []
        owners = [(session, container_id, helper), *more]
        for (pid, _start), seen in sorted(self._seen.items()):
            if seen.on_watched_ticks <= 0 or any(self._ours(seen, *o) for o in owners):
                continue
            entry = {
                "pid": pid,
                "session": seen.sid,
                "comm": seen.comm,
                "cpus_allowed": _cpu_text(seen.allowed),
                "cpu_seconds": round(seen.on_watched_ticks / CLK_TCK, 2),
            }
            restricted = bool(seen.allowed) and not self._online <= seen.allowed
            (pinned if restricted and seen.allowed & self.cpus else floating).append(entry)
        # Most CPU time first: past MAX_LISTED, what is cut is what mattered least (a busy
        # machine's many short pinned jobs once pushed a real intruder off a pid-ordered list).
        pinned.sort(key=lambda e: (-float(e["cpu_seconds"]), int(e["pid"])))
        floating.sort(key=lambda e: -float(e["cpu_seconds"]))
        return {
            "cpus": _cpu_text(self.cpus),
            "own_session": session,  # the benchmark's (host executor)
            "container_id": container_id,
            "container_helper_pid": helper,
            "samples": self.samples,
            "interval_seconds": self.interval,
            "pinned": pinned[:MAX_LISTED],
            "floating": floating[:MAX_LISTED],
            "floating_cpu_seconds": round(sum(float(e["cpu_seconds"]) for e in floating), 2),
        }

    @staticmethod
    def _ours(
        seen: _Seen, session: int | None, container_id: str | None, helper: int | None
    ) -> bool:
        if seen.runner_child or seen.comm in ENGINE_HELPERS:
            return True  # the engine's side: checks.engine_off_benchmark_cpus covers it
        if helper is not None and helper in seen.ancestors:
            return True  # the container's processes (cgroup v1 rootless has no cgroup)
        if session is not None and seen.sid == session:
            return True
        return bool(container_id and seen.cgroup and container_id in seen.cgroup)


def _ancestors(pid: int, parents: dict[int, int]) -> frozenset[int]:
    found = []
    for _ in range(64):
        pid = parents.get(pid, 0)
        if pid <= 1:
            break
        found.append(pid)
    return frozenset(found)


def _cpu_text(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))

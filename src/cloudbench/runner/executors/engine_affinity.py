"""Keeping the container engine's own processes off the benchmark CPUs.

The runner pins itself (loop._pin_housekeeping). The engine's daemons (dockerd, containerd,
`podman system service`) and each container's helper (conmon, containerd-shim) are other
processes: pinned here by PID, every thread, to the housekeeping CPUs and read back.
Processes they start later (helpers, runc) inherit the mask. The container's own processes
are moved to its cpuset when runc puts them in their cgroup — but only if that cpuset is
disjoint from the housekeeping CPUs: since Linux 6.2 the kernel keeps a requested mask
across cpuset changes and intersects the two. So the engine is pinned only when every
benchmark cpuset is disjoint (housekeeping isolated), and each task reads back the
affinity of the container's init process: the cpuset it really ran on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from cloudbench.platform.cpus import parse_cpu_list

log = logging.getLogger(__name__)

DEFAULT_SOCKET = Path("/var/run/docker.sock")
CONTAINERD_SOCKET = Path("/run/containerd/containerd.sock")


def cpu_list(cpus: set[int] | tuple[int, ...]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def api_socket(docker_host: str | None) -> Path | None:
    """The unix socket the engine API answers on; None when it is remote (tcp, ssh)."""
    if not docker_host:
        return DEFAULT_SOCKET
    if docker_host.startswith("unix://"):
        return Path(docker_host.removeprefix("unix://"))
    return None


def process_cpus(pid: int) -> set[int]:
    """The CPUs any thread of `pid` may run on (the union over its threads)."""
    cpus: set[int] = set()
    for tid in _threads(pid):
        try:
            cpus |= os.sched_getaffinity(tid)
        except OSError:
            continue  # the thread ended
    if not cpus:
        raise ProcessLookupError(pid)
    return cpus


def pin_process(pid: int, cpus: set[int]) -> set[int]:
    """Set every thread of `pid` to `cpus`; returns the affinity read back afterwards."""
    for _ in range(3):  # threads started during a pass come from unpinned ones: repeat
        stray = False
        for tid in _threads(pid):
            try:
                if os.sched_getaffinity(tid) != cpus:
                    os.sched_setaffinity(tid, cpus)
                    stray = True
            except ProcessLookupError:
                continue
        if not stray:
            break
    return process_cpus(pid)


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None


def engine_daemons(socket: Path) -> list[psutil.Process]:
    """The processes serving the API socket, and the containerd a dockerd among them uses."""
    daemons = _serving(socket)
    for proc in list(daemons):
        if _name(proc) != "dockerd":
            continue
        children = [c for c in _children(proc) if _name(c) == "containerd"]
        # A packaged dockerd talks to the system containerd (its own service).
        daemons += children or _serving(CONTAINERD_SOCKET)
    return list({p.pid: p for p in daemons}.values())


def _serving(socket: Path) -> list[psutil.Process]:
    """Processes holding the listening socket; not pid 1 (systemd socket activation)."""
    target = os.path.realpath(socket)
    pids: set[int] = set()
    try:
        for conn in psutil.net_connections(kind="unix"):
            path = conn.laddr if isinstance(conn.laddr, str) else ""
            if conn.pid and conn.pid != 1 and path and os.path.realpath(path) == target:
                pids.add(conn.pid)
    except (psutil.AccessDenied, OSError) as exc:
        log.debug("cannot list unix sockets: %s", exc)
    found = []
    for pid in sorted(pids):
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return found


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children()
    except psutil.Error:
        return []


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return "?"


class EngineAffinity:
    """Pins the engine to the housekeeping CPUs while the runner lives; checks every task."""

    def __init__(
        self,
        housekeeping: tuple[int, ...],
        benchmark_cpus: set[int],
        pin: bool,
        note: str | None = None,
        docker_host: str | None = None,
    ) -> None:
        self.housekeeping = set(housekeeping)
        self.benchmark = set(benchmark_cpus)
        disjoint = bool(self.housekeeping) and not self.housekeeping & self.benchmark
        # Pinning onto benchmark CPUs would confine the containers there (see the module doc).
        self.pin = pin and disjoint
        self.note: str | None = None
        if not pin:
            self.note = "engine not pinned: CLOUDBENCH_PIN_ENGINE is off (local provider default)"
        elif not disjoint:
            self.note = note or "housekeeping CPUs overlap the benchmark CPUs: engine not pinned"
        host = docker_host if docker_host is not None else os.environ.get("DOCKER_HOST")
        self.socket = api_socket(host)
        if self.socket is None:
            self.note = f"engine at {host} is not on this machine: not pinned, not verified"
        self._lock = threading.Lock()
        self._restore: dict[int, tuple[float, set[int]]] = {}  # pid: (create time, mask)

    def _daemons(self) -> list[psutil.Process]:
        return engine_daemons(self.socket) if self.socket else []

    def _keep_off(self, proc: psutil.Process, remember: bool) -> set[int]:
        """Pin one process (if we pin) and return its read-back affinity."""
        cpus = process_cpus(proc.pid)
        if not self.pin or cpus <= self.housekeeping:
            return cpus
        try:
            after = pin_process(proc.pid, self.housekeeping)
        except PermissionError:
            self.note = f"no permission to set the affinity of {_name(proc)} (pid {proc.pid})"
            return process_cpus(proc.pid)
        if remember:
            self._restore.setdefault(proc.pid, (proc.create_time(), cpus))
        log.info("pinned %s (pid %d) to CPUs %s", _name(proc), proc.pid, cpu_list(after))
        return after

    def pin_daemons(self) -> list[dict[str, Any]]:
        """Pin (when we may) and read back the engine's daemons; their facts."""
        facts = []
        with self._lock:
            for proc in self._daemons():
                try:
                    cpus = self._keep_off(proc, remember=True)
                except (ProcessLookupError, psutil.Error):
                    continue
                facts.append({"pid": proc.pid, "name": _name(proc), "cpus": cpu_list(cpus)})
        return facts

    def check_task(self, init_pid: int | None, slot_cpus: tuple[int, ...]) -> dict[str, Any]:
        """What one container ran on, read back: metadata `execution.engine_affinity`."""
        daemons = self.pin_daemons()
        facts: dict[str, Any] = {
            "housekeeping_cpus": cpu_list(self.housekeeping),
            "pinned_by_runner": self.pin,
            "daemons": daemons,
            "helper": None,
            "container_cpus": None,
            "cpuset_applied": None,
        }
        note = self.note if daemons else (self.note or "no engine process found on this machine")
        if init_pid:
            note = self._container(init_pid, slot_cpus, facts) or note
        else:
            note = note or "the container ended before its processes could be read"
        busy = set(slot_cpus) | self.benchmark
        seen = [parse_cpu_list(d["cpus"]) for d in daemons]
        if facts["helper"]:
            seen.append(parse_cpu_list(facts["helper"]["cpus"]))
        facts["off_benchmark_cpus"] = bool(daemons and facts["helper"]) and not any(
            cpus & busy for cpus in seen
        )
        facts["note"] = note
        return facts

    def _container(self, pid: int, slot_cpus: tuple[int, ...], facts: dict[str, Any]) -> str | None:
        try:
            init = psutil.Process(pid)
            ran_on = process_cpus(pid)
            if ran_on != set(slot_cpus):  # taskset in the container may not have run yet
                time.sleep(0.3)
                ran_on = process_cpus(pid)
            facts["container_cpus"] = cpu_list(ran_on)
            facts["cpuset_applied"] = ran_on == set(slot_cpus)
            helper = init.parent()
            if helper is None:
                return "the container's helper process is not visible"
            cpus = self._keep_off(helper, remember=False)
        except (ProcessLookupError, psutil.Error):
            return "the container ended before its processes could be read"
        facts["helper"] = {"pid": helper.pid, "name": _name(helper), "cpus": cpu_list(cpus)}
        return None

    def restore(self) -> None:
        """Give the daemons back the affinity they had, unless someone changed it since."""
        with self._lock:
            for pid, (created, cpus) in self._restore.items():
                try:
                    if psutil.Process(pid).create_time() != created:
                        continue
                    if process_cpus(pid) == self.housekeeping:
                        pin_process(pid, cpus)
                except (ProcessLookupError, PermissionError, psutil.Error):
                    continue
            self._restore.clear()

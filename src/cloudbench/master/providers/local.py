"""The local provider: runner processes on this machine, one set per local instance type."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from cloudbench.master.providers.base import (
    MachineRow,
    ProviderContext,
    ProviderError,
    RunnerOptions,
)
from cloudbench.platform import containers
from cloudbench.platform.cpus import CPU_SYSFS, allowed_cpus, read_cores, split_cores
from cloudbench.platform.processes import clean_env, tail, terminate
from cloudbench.platform.state import Session, record_for
from cloudbench.protocol import MachineList, RunSpec

logger = logging.getLogger(__name__)

STOP_GRACE = 15.0  # runners report in-flight tasks as failed before exiting


@dataclass
class _Runner:
    label: str
    alias: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    reported: bool = False

    def error_line(self) -> str:
        """The runner's own one-line reason (``error: …``), else its last log line."""
        lines = [line for line in tail(self.log_path, 40).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        last = errors[-1] if errors else (lines[-1] if lines else "(empty log)")
        return f"{last} (runner {self.label}, exit {self.proc.returncode}, log {self.log_path})"


class LocalProvider:
    name = "local"

    def __init__(self) -> None:
        self.runners: list[_Runner] = []
        self.run_id: int | None = None
        self.orchestrator_url: str | None = None
        self.session: Session | None = None
        self.work_root: Path | None = None

    def check(self, spec: RunSpec, options: RunnerOptions, *, resumed: int | None = None) -> None:
        if options.executor == "docker" and "system" in spec.rubies:
            raise ProviderError(
                'ruby_version "system" needs the host executor: use --executor host or auto'
            )
        source = options.ruby_bench
        if source and _looks_local(source) and not Path(source).is_dir():
            raise ProviderError(f"--ruby-bench {source}: no such directory")

    def start(self, ctx: ProviderContext) -> None:
        self.run_id, self.session = ctx.run_id, ctx.session
        self.orchestrator_url = ctx.orchestrator_url
        self.work_root = (ctx.state_dir / "runners").resolve()
        wanted = [
            (spec, index)
            for spec in ctx.instance_types(self.name)
            for index in range(1, ctx.spec.counts(spec).instances + 1)
        ]
        groups = cpu_groups(allowed_cpus(), len(wanted))
        for (spec, index), cpus in zip(wanted, groups, strict=True):
            label = f"{_safe(spec.effective_alias)}-{index}"
            self.runners.append(
                self._spawn(ctx, spec.instance_type, spec.effective_alias, label, cpus)
            )
        logger.info("started %d local runner(s)", len(self.runners))

    def _spawn(
        self,
        ctx: ProviderContext,
        instance_type: str,
        alias: str,
        label: str,
        cpus: list[int] | None,
    ) -> _Runner:
        opts = ctx.options
        work = ctx.state_dir / "runners" / label
        work.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "cloudbench",
            "runner",
            "--orchestrator-url",
            ctx.orchestrator_url,
            "--provider",
            self.name,
            "--instance-type",
            instance_type,
            "--alias",
            alias,
            "--run-id",
            str(ctx.run_id),
            "--executor",
            opts.executor,
            "--work-dir",
            str(work / "work"),
        ]
        if opts.slots:
            command += ["--slots", opts.slots]
        if cpus is not None:
            # Each runner sees only its own CPUs, so its slots never land on another's.
            command = ["taskset", "-c", ",".join(map(str, cpus)), *command]
        if opts.ruby_bench:
            command += ["--ruby-bench", opts.ruby_bench]
        if opts.debug:
            command.append("--debug")
        # The runner token travels in the environment: argv shows in process lists.
        env = clean_env(drop_all_cloudbench=False, drop=["CLOUDBENCH_ADMIN_TOKEN"])
        env["CLOUDBENCH_RUNNER_TOKEN"] = ctx.runner_token
        if ctx.orchestrator_cert:  # a cloud deployment's orchestrator: its certificate
            pin = ctx.state_dir / "orchestrator-cert.pem"
            pin.write_text(ctx.orchestrator_cert)
            env["CLOUDBENCH_TLS_CA_FILE"] = str(pin)
        if opts.heartbeat_interval:
            env["CLOUDBENCH_HEARTBEAT_INTERVAL"] = str(opts.heartbeat_interval)
        log_path = work / "runner.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        ctx.session.replace_process(None, record_for(psutil.Process(proc.pid), "runner", label))
        return _Runner(label, alias, proc, log_path)

    def poll(self) -> list[str]:
        problems = []
        for runner in self.runners:
            code = runner.proc.poll()
            if code not in (None, 0) and not runner.reported:
                runner.reported = True
                problems.append(
                    f"runner {runner.label} exited with {code}; log {runner.log_path}:\n"
                    f"{tail(runner.log_path, 8)}"
                )
        return problems

    def active(self) -> bool:
        return any(r.proc.poll() is None for r in self.runners)

    def observe(self, machines: MachineList) -> list[MachineRow]:
        return []  # local runners are our processes: exited() watches them

    def lost(self) -> list[tuple[str, str]]:
        return []

    def replace(self, provider: str, alias: str) -> bool:
        return False  # a local runner is this machine: nothing to replace

    def exited(self) -> dict[tuple[str, str], str]:
        by_alias: dict[str, list[_Runner]] = {}
        for runner in self.runners:
            by_alias.setdefault(runner.alias, []).append(runner)
        return {
            (self.name, alias): group[-1].error_line()
            for alias, group in by_alias.items()
            if all(r.proc.poll() not in (None, 0) for r in group)
        }

    def stop(self, hurry: bool = False) -> None:
        live = [psutil.Process(r.proc.pid) for r in self.runners if r.proc.poll() is None]
        if live:
            logger.info("stopping %d local runner(s)", len(live))
            terminate(live, 0.0 if hurry else STOP_GRACE)
        for runner in self.runners:
            runner.proc.wait()
        if self.work_root is not None:
            _kill_orphans(self.work_root)
        if self.run_id is not None:
            removed = containers.remove_ours(self.run_id, self.orchestrator_url)
            if removed:
                logger.info("removed %d leftover container(s)", removed)
        if self.session is not None:
            pids = {r.proc.pid for r in self.runners}
            self.session.processes = [p for p in self.session.processes if p.pid not in pids]
            self.session.save()


def _kill_orphans(work_root: Path) -> None:
    """Benchmark processes a killed runner left behind: they run inside our work dirs."""
    orphans = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd")
        if cwd and Path(cwd).is_relative_to(work_root):
            orphans.append(proc)
    if orphans:
        logger.warning("killing %d process(es) left in %s", len(orphans), work_root)
        terminate(orphans, 2.0)


def _looks_local(source: str) -> bool:
    return "://" not in source and not source.startswith("git@")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def cpu_groups(cpus: list[int], runners: int, sysfs: Path = CPU_SYSFS) -> list[list[int] | None]:
    """Split this machine's CPUs into one disjoint group of whole cores per runner process.

    Runners on one machine must not pin their slots to the same CPUs at the same time, or
    their benchmarks interfere; nor may two runners hold sibling threads of one core, or
    each records (rightly) that its siblings were busy. With fewer cores than runners there
    is no clean split: every runner gets the whole machine and they take turns, task by
    task in arrival order, through the machine-wide CPU leases every slot takes
    (platform/cpulease.py) — never two benchmarks on one CPU.
    """
    if runners <= 1:
        return [None] * runners
    cores = read_cores(cpus, sysfs)
    if len(cores) < runners:
        logger.warning(
            "%d local runners for %d physical core(s): they take turns on the benchmark "
            "CPUs, one task at a time (the run takes longer)",
            runners,
            len(cores),
        )
        return [None] * runners
    return [list(group) for group in split_cores(cores, runners)]

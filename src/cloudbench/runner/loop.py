"""The claim loop: one thread per slot, signals, and what happens when all slots end."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
from types import FrameType

from cloudbench.platform.cpulease import CpuLeases
from cloudbench.protocol import ClaimRequest, ClaimStatus, HeartbeatStatus
from cloudbench.runner.boot import BootClock
from cloudbench.runner.client import OrchestratorClient, OrchestratorError, OrchestratorUnreachable
from cloudbench.runner.cpuinfo import cpu_facts
from cloudbench.runner.executors import ImageSharing, StartupError, choose
from cloudbench.runner.executors.engine_affinity import EngineAffinity
from cloudbench.runner.machine_report import MachineReporter
from cloudbench.runner.machine_state import machine_state
from cloudbench.runner.packaging import Uploader
from cloudbench.runner.preempt import InterruptionWatch
from cloudbench.runner.ruby_bench import prepare_source
from cloudbench.runner.settings import RunnerSettings
from cloudbench.runner.slots import Slot, SlotPlan, make_slots, plan_slots, topology_facts
from cloudbench.runner.task import Machine, Outcome, TaskRun

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
# In the work dir when --debug and a task failed: the boot script does not power off.
DEBUG_KEEP = "debug-keep"


class Runner:
    def __init__(self, settings: RunnerSettings, instance: dict[str, str | None] | None = None):
        self.settings = settings
        self.plan: SlotPlan = plan_slots(settings.slots, settings.housekeeping_cpus)
        self.slots: list[Slot] = make_slots(self.plan)
        self.instance = instance or {
            "provider": settings.provider,
            "instance_type": settings.instance_type,
        }
        self.shutdown = threading.Event()
        self.signal_received: int | None = None
        self.errors: list[str] = []
        self.failed_tasks: list[str] = []
        self.boot = BootClock.at_start(self.instance)  # the runner's start: local boot
        self.reporter = MachineReporter(settings, None)
        self.preempted: list[str] = []  # the interruption notice, once seen
        self.watch = InterruptionWatch(settings.provider, self._on_notice)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ entry point
    def run(self) -> int:
        """Run until no work is left; StartupError when this machine cannot do the work."""
        s = self.settings
        s.work_dir.mkdir(parents=True, exist_ok=True)
        # Before any thread starts (the reporter's, the client's): threads keep the
        # affinity they were born with, and a runner thread left on another runner's
        # benchmark CPU is what that runner's CPU watch rightly flags.
        self._pin_housekeeping()
        client = OrchestratorClient(
            s.orchestrator_url,
            s.runner_token.get_secret_value(),
            s.unreachable_give_up,
            ca_file=s.tls_ca_file,
        )
        self.reporter = MachineReporter(s, client, self.boot)
        self.reporter.start()
        try:
            code = self._run(client)
        except StartupError as exc:
            self.reporter.report(HeartbeatStatus.error, f"error: {exc}", final=True)
            raise
        except BaseException as exc:
            self.reporter.report(HeartbeatStatus.error, f"runner crashed: {exc}", final=True)
            raise
        finally:
            self.reporter.stop()
            client.close()
        return code

    def _run(self, client: OrchestratorClient) -> int:
        s = self.settings
        leases = CpuLeases()
        problem = leases.check()
        if problem:
            raise StartupError(problem)
        source = prepare_source(s.ruby_bench, s.ruby_bench_commit, s.work_dir / "cache")
        executor = choose(
            s.executor,
            source,
            s.work_dir,
            s.ruby_image_digest,
            self._affinity(),
            engine_wait=s.engine_wait,
            ruby_image=s.ruby_image,
            images=ImageSharing(s.image_archive, s.save_images),
        )
        uploader = Uploader(give_up_after=s.unreachable_give_up, ca_file=s.tls_ca_file)
        machine = Machine(
            s,
            client,
            uploader,
            executor,
            source,
            self._facts(),
            self.shutdown,
            plan=self.plan,
            leases=leases,
            on_stage=self.reporter.stage_changed,
            boot=self.boot,
            preempted=self.preempted,
        )
        log.info(
            "runner: %d slot(s), executor %s, ruby-bench %s",
            len(self.slots),
            executor.name,
            source.commit or source.origin,
        )
        self.reporter.report(
            HeartbeatStatus.running, f"runner: {len(self.slots)} slot(s), executor {executor.name}"
        )
        self.watch.start()
        try:
            self._run_slots(machine)
        finally:
            self.watch.stop()
            uploader.close()
            executor.close()
        if machine.unfit and self.signal_received is None:
            raise StartupError(machine.unfit[0])
        return self._finish()

    def _pin_housekeeping(self) -> None:
        # Threads inherit the affinity of the thread that starts them: pin before any starts.
        # Benchmarks get their own CPUs from taskset / the container's cpuset.
        cpus = set(self.plan.housekeeping)
        if cpus and cpus != set(os.sched_getaffinity(0)):
            os.sched_setaffinity(0, cpus)
        log.info(
            "housekeeping on CPUs %s%s",
            ",".join(map(str, sorted(cpus))),
            f" ({self.plan.note})" if self.plan.note else "",
        )

    def _affinity(self) -> EngineAffinity:
        benchmark = {cpu for group in self.plan.groups for cpu in group}
        return EngineAffinity(
            self.plan.housekeeping, benchmark, self.settings.pins_engine, self.plan.note
        )

    def _facts(self) -> dict[str, object]:
        return {
            "hostname": socket.gethostname(),
            "instance": self.instance,
            "cpu": {**cpu_facts(), **topology_facts(self.plan)},
            "machine": machine_state(),
        }

    def _run_slots(self, machine: Machine) -> None:
        threads = [
            threading.Thread(
                target=self._slot_main, args=(machine, slot), name=f"slot-{slot.index}"
            )
            for slot in self.slots
        ]
        for thread in threads:
            thread.start()
        # Short joins keep the main thread responsive to signals.
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.5)

    def _finish(self) -> int:
        if self.preempted:
            # Its tasks failed `preempted` (retried elsewhere); the cloud ends the machine.
            self.reporter.report(HeartbeatStatus.error, f"preempted: {self.preempted[0]}", True)
            return EXIT_OK
        if self.signal_received is not None:
            log.warning("stopped by signal %d", self.signal_received)
            self.reporter.report(
                HeartbeatStatus.error,
                f"runner stopped by signal {self.signal_received}",
                final=True,
            )
            return 128 + self.signal_received
        if self.errors:
            for error in self.errors:
                log.error("%s", error)
            self.reporter.report(HeartbeatStatus.error, self.errors[0], final=True)
            return EXIT_ERROR
        log.info("all slots done")
        if self.failed_tasks and self.settings.debug:
            # The boot script sees this file and keeps the machine up (cloudbench run --debug).
            (self.settings.work_dir / DEBUG_KEEP).write_text("\n".join(self.failed_tasks) + "\n")
            self.reporter.report(
                HeartbeatStatus.error,
                f"{len(self.failed_tasks)} task(s) failed; staying up for debugging (--debug)",
                final=True,
            )
            return EXIT_OK
        self.reporter.report(HeartbeatStatus.finished, "all slots done", final=True)
        if self.settings.shutdown_on_done and not self.settings.debug:
            shutdown_machine()
        return EXIT_OK

    # ------------------------------------------------------------ one slot
    def _slot_main(self, machine: Machine, slot: Slot) -> None:
        try:
            self._claim_loop(machine, slot)
        except (OrchestratorUnreachable, OrchestratorError) as exc:
            self._error(f"slot {slot.index} ({slot.runner_id}): {exc}")
        except Exception as exc:
            log.exception("slot %d crashed", slot.index)
            self._error(f"slot {slot.index} crashed: {exc}")

    def _claim_loop(self, machine: Machine, slot: Slot) -> None:
        s = self.settings
        request = ClaimRequest(
            provider=s.provider,
            instance_type=s.resolved_instance_type,
            runner_id=slot.runner_id,
            alias=s.alias,
            host=socket.gethostname()[:200] or None,
        )
        while not self.shutdown.is_set():
            if machine.unfit:
                return  # every task would fail the same way here; Runner.run says why
            response = machine.client.claim(request, run_id=s.run_id, interrupt=self.shutdown)
            if response.status == ClaimStatus.done:
                log.info("slot %d: no more tasks", slot.index)
                return
            if response.status == ClaimStatus.wait:
                self.shutdown.wait(response.retry_after_seconds or s.wait_default)
                continue
            if response.task is None or response.presigned_urls is None:
                raise OrchestratorError(200, "assigned answer came without a task or upload URLs")
            task = response.task
            machine.boot.mark("first_claim")
            if TaskRun(machine, slot, task, response.presigned_urls).run() == Outcome.failed:
                with self._lock:
                    self.failed_tasks.append(f"task {task.id} (run {task.run_id})")

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    # ------------------------------------------------------------ signals
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_notice(self, notice: str) -> None:
        """The interruption notice: running tasks fail `preempted`, no slot claims more."""
        self.preempted.append(notice)
        self.shutdown.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Tasks watch this event: their containers are stopped and they report runner_error.
        if self.signal_received is None:
            log.warning("signal %d: stopping tasks and reporting them failed", signum)
        self.signal_received = signum
        self.shutdown.set()


def shutdown_machine() -> None:
    log.warning("--shutdown-on-done: powering off")
    for command in (["systemctl", "poweroff"], ["shutdown", "-h", "now"], ["poweroff"]):
        if shutil.which(command[0]):
            try:
                subprocess.run(command, check=True, timeout=60)
                return
            except (OSError, subprocess.SubprocessError) as exc:
                log.error("%s failed: %s", " ".join(command), exc)
    log.error("could not shut the machine down")

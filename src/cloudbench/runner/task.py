"""One task from claim to complete/fail: provision, run, package, upload, report."""

from __future__ import annotations

import logging
import shutil
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cloudbench.platform.cpulease import CpuLeases, Lease
from cloudbench.protocol import (
    CompleteRequest,
    ErrorType,
    FailRequest,
    HeartbeatStatus,
    PresignedUrls,
    TaskAssignment,
    UploadUrlsRequest,
)
from cloudbench.runner.alternate import Alternation, Step, needs_alternation
from cloudbench.runner.boot import BootClock
from cloudbench.runner.client import OrchestratorClient, OrchestratorError, TaskLost
from cloudbench.runner.columns import executable_args, labels, task_columns
from cloudbench.runner.engines import EngineMissing, check_columns
from cloudbench.runner.executors.base import (
    ExecutionResult,
    ExecutionSpec,
    Executor,
    MachineUnfit,
    Provisioned,
    ProvisionError,
)
from cloudbench.runner.heartbeat import Heartbeater
from cloudbench.runner.metadata import build_metadata, utc_now
from cloudbench.runner.ordering import supports_interleave
from cloudbench.runner.output import (
    OUT_NAME,
    ProgressTracker,
    ResultFormatError,
    missing_benchmarks,
    read_failed_benchmarks,
    read_result_json,
)
from cloudbench.runner.packaging import (
    Uploader,
    UploadError,
    build_error_tarball,
    build_result_tarball,
)
from cloudbench.runner.provenance import Provenance
from cloudbench.runner.ruby_bench import RubyBenchSource
from cloudbench.runner.settings import RunnerSettings
from cloudbench.runner.slots import Slot, SlotPlan

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    completed = "completed"
    failed = "failed"
    lost = "lost"  # 409: dropped without reporting


class TaskFailure(Exception):
    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass
class Machine:
    """What every task of this runner shares."""

    settings: RunnerSettings
    client: OrchestratorClient
    uploader: Uploader
    executor: Executor
    source: RubyBenchSource
    facts: dict[str, object]
    shutdown: threading.Event = field(default_factory=threading.Event)
    plan: SlotPlan | None = None
    leases: CpuLeases = field(default_factory=CpuLeases)  # machine-wide, every runner
    # Why this machine can never run the tasks (MachineUnfit): its slots stop claiming.
    unfit: list[str] = field(default_factory=list)
    # The machine's own stage for the orchestrator (runner/machine_report.py); no-op locally.
    on_stage: Callable[[HeartbeatStatus, str], None] = lambda _stage, _line: None
    boot: BootClock = field(default_factory=BootClock)  # runner/boot.py
    # The interruption notice (runner/preempt.py), once seen: tasks fail `preempted`.
    preempted: list[str] = field(default_factory=list)


class _SlotLogFilter(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.threadName or "").startswith(self.prefix)


class TaskRun:
    def __init__(self, machine: Machine, slot: Slot, task: TaskAssignment, urls: PresignedUrls):
        self.m, self.slot, self.task, self.urls = machine, slot, task, urls
        # Unique per run and attempt: a fresh database numbers tasks (and leases) from 1
        # again, so task id and lease alone collide with a killed runner's leftovers.
        name = f"run_{task.run_id}_task_{task.id}_attempt_{task.attempt}_lease_{task.lease}"
        self.dir = machine.settings.work_dir / "tasks" / name
        self.out_dir = self.dir / "out"
        self.log_path = self.dir / "output.txt"
        self.runner_log = self.dir / "runner.log"
        self.cancel = threading.Event()
        self.tracker = ProgressTracker(len(labels(task)))
        self.prov = Provenance(task, slot, machine.plan, machine.leases)
        self.provisioned: Provisioned | None = None  # the first Ruby's
        self.rubies: dict[str, Provisioned] = {}  # every Ruby of the task
        self.result: ExecutionResult | None = None
        self.hb = Heartbeater(
            machine.client,
            task.id,
            slot.runner_id,
            task.lease,
            machine.settings.heartbeat_interval,
            self.cancel.set,
            thread_name=f"slot-{slot.index}-heartbeat",
        )

    # ------------------------------------------------------------ driver
    def run(self) -> Outcome:
        if self.dir.exists():  # a killed runner's leftover: nobody else holds this lease
            log.warning("removing stale task folder %s", self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.out_dir.mkdir(exist_ok=True)
        handler = logging.FileHandler(self.runner_log)
        handler.addFilter(_SlotLogFilter(f"slot-{self.slot.index}"))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        log.info(
            "task %d (run %d, lease %d) on CPUs %s",
            self.task.id,
            self.task.run_id,
            self.task.lease,
            self.slot.cpuset,
        )
        outcome = Outcome.failed
        try:
            self.hb.start()
            outcome = self._run_steps()
        except TaskLost:
            outcome = Outcome.lost
        except Exception as exc:
            log.exception("task %d: runner error", self.task.id)
            detail = "".join(traceback.format_exception(exc))
            outcome = self._report_failure(ErrorType.runner_error, f"runner error: {exc}", detail)
        finally:
            self.hb.stop()
            logging.getLogger().removeHandler(handler)
            handler.close()
            self._cleanup(outcome)
        log.info("task %d: %s", self.task.id, outcome)
        return outcome

    def _run_steps(self) -> Outcome:
        try:
            self._provision()
            self._execute()
            self._verify()
            self._check_result()
            self._upload_result()
        except TaskFailure as failure:
            if self.hb.lost.is_set():
                return Outcome.lost
            return self._report_failure(failure.error_type, str(failure))
        return self._complete()

    # ------------------------------------------------------------ steps
    def _provision(self) -> None:
        self.hb.update(HeartbeatStatus.provision, now=True)
        try:
            for ruby in self.task.rubies:
                self.rubies[ruby] = self.m.executor.provision(ruby, self.task.benchmarks)
            self.provisioned = self.rubies[self.task.ruby_version]
            ready = "image_present" if self.provisioned.image_id else "ruby_ready"
            self.m.boot.mark(ready)
        except MachineUnfit as exc:
            self.m.unfit.append(str(exc))
            raise TaskFailure(ErrorType.provision_failed, str(exc)) from exc
        except ProvisionError as exc:
            raise TaskFailure(ErrorType.provision_failed, str(exc)) from exc
        try:  # before any benchmark: does each Ruby run each engine and its options?
            self.prov.facts.engines = check_columns(
                self.m.executor.probe, self.rubies, task_columns(self.task)
            )
        except EngineMissing as exc:
            raise TaskFailure(ErrorType.executable_mismatch, str(exc)) from exc
        self._check_stopped()

    def _execute(self) -> None:
        assert self.provisioned is not None
        self.hb.update(HeartbeatStatus.running, progress=0.0, now=True)
        env = self.prov.chosen_env(self.m.settings.pass_env_names)
        spec = ExecutionSpec(
            task_id=self.task.id,
            run_id=self.task.run_id,
            runner_id=self.slot.runner_id,
            benchmarks=self.task.benchmarks,
            provisioned=self.provisioned,
            cpus=self.slot.cpus,
            work_dir=self.dir,
            out_dir=self.out_dir,
            log_path=self.log_path,
            timeout=self.m.settings.task_timeout,
            keep_on_failure=self.m.settings.debug,
            on_line=self._on_line,
            cancel=self.cancel,
            env=env,
            seed=self.prov.seed,
            interleave=supports_interleave(self.m.source.path),
            executables=executable_args(self.task, self.rubies),
            orchestrator_url=self.m.settings.orchestrator_url,
        )
        # A signal arriving now must stop this execution too.
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_shutdown, args=(done,), daemon=True)
        watcher.start()
        lease = self._take_cpus()
        try:
            self.prov.start(lease)
            self.m.boot.mark("first_benchmark")
            self.result = self._run_ruby_bench(spec)
        except ProvisionError as exc:
            raise TaskFailure(ErrorType.provision_failed, str(exc)) from exc
        finally:
            done.set()
            self.prov.stop(self.provisioned, self.result)  # gives the CPUs back
        self._check_stopped()
        if self.result.timed_out:
            raise TaskFailure(
                ErrorType.timeout, f"task exceeded the {self.m.settings.task_timeout:g}s timeout"
            )

    def _run_ruby_bench(self, spec: ExecutionSpec) -> ExecutionResult:
        """One process for every column, or (several Rubies, one image each) one per
        (Ruby, benchmark), alternating (alternate.py)."""
        if not needs_alternation(self.rubies):
            return self.m.executor.execute(spec)
        steps = Alternation(self.m.executor, spec, self.task, self.rubies, self._on_step)
        try:
            return steps.run()
        finally:
            self.prov.processes = steps.processes()

    def _on_step(self, step: Step, index: int, total: int) -> None:
        self.prov.timeline.restart(step.labels)
        share = 1.0 / total if total else 0.0
        self.tracker.restart(len(step.labels), max(index, 0) * share, share)

    def _take_cpus(self) -> Lease:
        """Wait in line until no other cloudbench benchmark on this machine holds our CPUs."""
        lease = self.prov.take_cpus(self._interrupted)
        if lease is None:
            self._check_stopped()
            raise TaskFailure(ErrorType.runner_error, "stopped while waiting for CPUs")
        return lease

    def _interrupted(self) -> bool:
        return self.cancel.is_set() or self.m.shutdown.is_set() or self.hb.lost.is_set()

    def _verify(self) -> None:
        """A mislabelled column (yjit without +YJIT, interp with it) fails the task."""
        assert self.provisioned is not None
        v = self.prov.verify(self.out_dir / f"{OUT_NAME}.json", self.provisioned.ruby)
        if v is not None and v.mismatches:
            raise TaskFailure(ErrorType.executable_mismatch, "; ".join(v.mismatches))

    def _watch_shutdown(self, done: threading.Event) -> None:
        while not (done.is_set() or self.cancel.is_set()):
            if self.m.shutdown.wait(0.5):
                self.cancel.set()

    def _on_line(self, line: str) -> None:
        self.prov.on_line(line)
        if self.tracker.feed(line):
            name, pct = self.tracker.snapshot()
            # A new benchmark is told at once (the progress view shows it from its first
            # second), not at the next periodic heartbeat up to 30 s later.
            changed = name != getattr(self, "_told_benchmark", None)
            self._told_benchmark = name
            self.hb.update(benchmark=name, progress=pct, now=changed)

    def _check_stopped(self) -> None:
        if self.hb.lost.is_set():
            raise TaskLost(409, "task no longer ours")
        if self.m.preempted:  # before the shutdown it also set: retried elsewhere
            raise TaskFailure(ErrorType.preempted, f"preempted: {self.m.preempted[0]}")
        if self.m.shutdown.is_set():
            raise TaskFailure(ErrorType.runner_error, "runner stopped by a signal mid-task")

    def _check_result(self) -> None:
        assert self.result is not None
        failed = read_failed_benchmarks(self.log_path)
        problems = []
        if self.result.exit_code != 0:
            problems.append(f"ruby-bench exited with code {self.result.exit_code}")
        if failed:
            problems.append(
                "failed benchmarks: "
                + "; ".join(f"{exe}: {', '.join(names)}" for exe, names in failed.items())
            )
        problems += self._output_problems(self.out_dir / f"{OUT_NAME}.json")
        if problems:
            raise TaskFailure(ErrorType.benchmark_failed, "; ".join(problems))

    def _output_problems(self, json_path: Path) -> list[str]:
        if not json_path.is_file():
            return ["no output.json written"]
        try:
            summary = read_result_json(json_path)
        except ResultFormatError as exc:
            return [str(exc)]
        # ruby-bench exits 0 when its filters match nothing, or only some names.
        if not any(summary.benchmarks.values()):
            return ["no benchmark ran (do the names/categories match any?)"]
        missing = missing_benchmarks(self.task.benchmarks.names, summary)
        return [f"requested benchmarks did not run: {', '.join(missing)}"] if missing else []

    def _upload_result(self) -> None:
        self.hb.update(HeartbeatStatus.uploading, now=True)
        self.m.on_stage(HeartbeatStatus.uploading, f"task {self.task.id}: uploading its result")
        tarball = build_result_tarball(
            self.dir / "result.tar.gz", self.log_path, self.out_dir, self._metadata()
        )
        try:
            self.m.uploader.upload(tarball, self.urls.result_upload_url, self._refresh_result)
        except UploadError as exc:
            raise TaskFailure(ErrorType.upload_failed, str(exc)) from exc

    def _complete(self) -> Outcome:
        request = CompleteRequest(
            runner_id=self.slot.runner_id, lease=self.task.lease, s3_result_key=self.urls.result_key
        )
        try:
            self.m.client.complete(self.task.id, request)
        except TaskLost:
            log.warning("task %d: complete answered 409; dropped", self.task.id)
            return Outcome.lost
        except OrchestratorError as exc:
            if exc.status != 422:
                raise
            # The result was refused (no upload, or one that does not parse). A refused
            # result's attempt is already failed there, so this report is then a 409.
            return self._report_failure(ErrorType.upload_failed, f"complete refused: {exc.detail}")
        finally:
            self.m.on_stage(HeartbeatStatus.running, f"task {self.task.id}: result uploaded")
        return Outcome.completed

    # ------------------------------------------------------------ failure path
    def _report_failure(self, error_type: ErrorType, message: str, detail: str = "") -> Outcome:
        log.error("task %d failed (%s): %s", self.task.id, error_type, message)
        error_key = self._upload_error(error_type, message, detail)
        request = FailRequest(
            runner_id=self.slot.runner_id,
            lease=self.task.lease,
            error_type=error_type,
            error_message=message[:20_000],
            s3_error_key=error_key,
        )
        try:
            self.m.client.fail(self.task.id, request)
        except TaskLost:
            log.warning("task %d: fail answered 409; dropped", self.task.id)
            return Outcome.lost
        return Outcome.failed

    def _upload_error(self, error_type: ErrorType, message: str, detail: str) -> str | None:
        files = {
            "output.txt": self.log_path,
            "runner.log": self.runner_log,
            "output.json": self.out_dir / f"{OUT_NAME}.json",
            "output.csv": self.out_dir / f"{OUT_NAME}.csv",
        }
        text = f"error_type: {error_type}\n{message}\n{detail}"
        try:
            tarball = build_error_tarball(self.dir / "error.tar.gz", text, files, self._metadata())
            self.m.uploader.upload(tarball, self.urls.error_upload_url, self._refresh_error)
        except (UploadError, OSError) as exc:
            log.error("task %d: error tarball not uploaded: %s", self.task.id, exc)
            return None
        return self.urls.error_key

    # ------------------------------------------------------------ helpers
    def _refresh(self) -> PresignedUrls:
        request = UploadUrlsRequest(runner_id=self.slot.runner_id, lease=self.task.lease)
        self.urls = self.m.client.upload_urls(self.task.id, request)
        return self.urls

    def _refresh_result(self) -> str:
        return self._refresh().result_upload_url

    def _refresh_error(self) -> str:
        return self._refresh().error_upload_url

    def _metadata(self) -> dict[str, Any]:
        f = self.prov.facts
        f.failed_benchmarks = read_failed_benchmarks(self.log_path)
        f.finished_at = f.finished_at or utc_now()  # set when the benchmark gave its CPUs back
        f.provisioned, f.result, f.rubies = self.provisioned, self.result, self.rubies
        return build_metadata(
            self.task,
            self.slot,
            self.m.source,
            self._executor_name(),
            self.m.facts,
            f,
            boot=self.m.boot.block(),
        ).to_dict()

    def _executor_name(self) -> str:
        # "auto" decides per Ruby version; record what actually ran the benchmarks.
        if self.m.executor.name != "auto" or self.provisioned is None:
            return self.m.executor.name
        return "docker" if self.provisioned.image_id is not None else "host"

    def _cleanup(self, outcome: Outcome) -> None:
        if self.m.settings.debug and outcome != Outcome.completed:
            log.warning("debug: keeping %s", self.dir)
            return
        shutil.rmtree(self.dir, ignore_errors=True)

"""Every status and error type that crosses a process boundary (and the ORM columns)."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    pending = "pending"
    claimed = "claimed"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE_STATUSES = (TaskStatus.claimed, TaskStatus.running)
UNFINISHED_STATUSES = (TaskStatus.pending, *ACTIVE_STATUSES)
TERMINAL_STATUSES = (TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled)


class RunStatus(StrEnum):
    running = "running"
    completed = "completed"
    cancelled = "cancelled"


class HeartbeatStatus(StrEnum):
    boot = "boot"
    provision = "provision"
    running = "running"
    uploading = "uploading"
    finished = "finished"
    error = "error"


class ArchiveState(StrEnum):
    none = "none"  # run still going
    pending = "pending"
    building = "building"
    ready = "ready"
    failed = "failed"


ARCHIVE_SETTLED = (ArchiveState.ready, ArchiveState.failed)


class ErrorType(StrEnum):
    """Every failure's type. Infrastructure failures are retried, result failures not."""

    # infrastructure: the machine, the network or the runner failed, not the benchmark
    timeout = "timeout"  # no heartbeat for HEARTBEAT_TIMEOUT (or the runner's task timeout)
    runner_error = "runner_error"
    provision_failed = "provision_failed"  # image build, suite fetch, Ruby install
    upload_failed = "upload_failed"
    preempted = "preempted"  # the runner saw its spot interruption notice
    instance_terminated = "instance_terminated"  # the runner saw its machine shut down
    # results: running again would give the same answer
    benchmark_failed = "benchmark_failed"
    executable_mismatch = "executable_mismatch"
    cancelled = "cancelled"


RETRYABLE_ERRORS = frozenset(
    {
        ErrorType.timeout,
        ErrorType.runner_error,
        ErrorType.provision_failed,
        ErrorType.upload_failed,
        ErrorType.preempted,
        ErrorType.instance_terminated,
    }
)
DEFAULT_MAX_ATTEMPTS = 2
MAX_ATTEMPTS_LIMIT = 10


class AttemptOutcome(StrEnum):
    """How one attempt at a task ended (the task's own status says how the task did)."""

    running = "running"  # the current attempt, still going
    completed = "completed"
    retried = "retried"  # failed with a retryable type; the task went back to pending
    failed = "failed"
    cancelled = "cancelled"


class SlotMode(StrEnum):
    """How a runner splits its machine into slots (`--slots`; `auto` means physical)."""

    physical = "physical"  # one slot per physical core, pinned to one of its threads
    logical = "logical"  # one slot per vCPU: sibling threads co-run, on purpose
    cores = "cores"  # `--slots N`: N slots, each given whole cores


class AslrState(StrEnum):
    """ASLR as verified from ruby-bench's own command_line (`setarch ... -R`)."""

    disabled = "disabled"
    enabled = "enabled"
    unknown = "unknown"  # no benchmark result to verify it from


class ClaimStatus(StrEnum):
    assigned = "assigned"
    wait = "wait"  # nothing to claim now, but a running task may still come back to retry
    done = "done"

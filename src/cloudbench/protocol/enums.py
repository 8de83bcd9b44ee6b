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
    provision_failed = "provision_failed"
    benchmark_failed = "benchmark_failed"
    timeout = "timeout"
    upload_failed = "upload_failed"
    runner_error = "runner_error"
    cancelled = "cancelled"


class ClaimStatus(StrEnum):
    assigned = "assigned"
    done = "done"

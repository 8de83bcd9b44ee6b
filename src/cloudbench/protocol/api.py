"""HTTP bodies between runner, master and orchestrator (the error envelope: errors.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from cloudbench.protocol.config import (
    MAX_DB_INT,
    BenchmarkSettings,
    Name,
    PerInstanceType,
    Strict,
)
from cloudbench.protocol.enums import (
    DEFAULT_MAX_ATTEMPTS,
    ArchiveState,
    AttemptOutcome,
    ClaimStatus,
    ErrorType,
    HeartbeatStatus,
    RunStatus,
    TaskStatus,
)

# ---------------------------------------------------------------- runner protocol


class ClaimRequest(Strict):
    provider: Literal["aws", "azure", "local"]
    instance_type: Name
    runner_id: Annotated[str, Field(min_length=1, max_length=200)]
    alias: Name | None = None
    # The machine: a retried task prefers a runner on another host (best effort).
    host: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class TaskAssignment(BaseModel):
    id: int
    run_id: int
    provider: str
    instance_type: str
    alias: str
    run_number: int
    ruby_version: str  # the first Ruby when the run compares several
    benchmarks: BenchmarkSettings
    lease: int
    attempt: int = 1
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # Every Ruby the task runs (config ruby_versions); None: ruby_version alone.
    ruby_versions: list[str] | None = None

    @property
    def rubies(self) -> list[str]:
        return list(self.ruby_versions) if self.ruby_versions else [self.ruby_version]


class PresignedUrls(BaseModel):
    result_upload_url: str
    error_upload_url: str
    result_key: str
    error_key: str


class ClaimResponse(BaseModel):
    status: ClaimStatus
    task: TaskAssignment | None = None
    presigned_urls: PresignedUrls | None = None
    retry_after_seconds: int | None = None


class _Fenced(Strict):
    runner_id: Annotated[str, Field(min_length=1, max_length=200)]
    lease: int | None = Field(default=None, ge=0, le=MAX_DB_INT)


class HeartbeatRequest(_Fenced):
    status: HeartbeatStatus
    current_benchmark: Annotated[str, Field(max_length=200)] | None = None
    progress_pct: float | None = Field(default=None, ge=0, le=100)
    message: Annotated[str, Field(max_length=2000)] | None = None


class CompleteRequest(_Fenced):
    s3_result_key: Annotated[str, Field(min_length=1, max_length=1024)]


class FailRequest(_Fenced):
    error_type: ErrorType
    error_message: Annotated[str, Field(max_length=20_000)]
    s3_error_key: Annotated[str, Field(max_length=1024)] | None = None


class UploadUrlsRequest(_Fenced):
    pass


class AttemptOut(BaseModel):
    attempt: int
    outcome: AttemptOutcome
    runner_id: str | None = None
    host: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class TaskOut(BaseModel):
    id: int
    run_id: int
    provider: str
    instance_type: str
    alias: str
    run_number: int
    status: TaskStatus
    runner_id: str | None = None
    lease: int = 0
    claimed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    heartbeat_status: HeartbeatStatus | None = None
    current_benchmark: str | None = None
    progress_pct: float | None = None
    heartbeat_message: str | None = None
    error_type: ErrorType | None = None
    error_message: str | None = None
    result_key: str | None = None
    error_key: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt: int = 1
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    runner_host: str | None = None
    attempts: list[AttemptOut] = Field(default_factory=list)


# ---------------------------------------------------------------- run responses


class TaskBrief(BaseModel):
    id: int
    provider: str
    instance_type: str
    alias: str
    run_number: int
    status: TaskStatus


class RunCreated(BaseModel):
    run_id: int
    tasks_created: int
    tasks: list[TaskBrief]
    ignored: list[str] = Field(default_factory=list)


class TaskCounts(BaseModel):
    total: int = 0
    pending: int = 0
    claimed: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    removed: int = 0


class InstanceTypeProgress(BaseModel):
    provider: str
    instance_type: str
    alias: str
    counts: TaskCounts
    current_benchmarks: list[str] = Field(default_factory=list)
    oldest_heartbeat_at: datetime | None = None
    # The running tasks' progress summed, in tasks (two tasks half done: 1.0); 0 from an
    # orchestrator that predates it.
    running_progress: float = 0.0


class RunOut(BaseModel):
    run_id: int
    status: RunStatus
    ruby_version: str
    per_instance_type: PerInstanceType
    benchmarks: BenchmarkSettings
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    created_at: datetime
    finished_at: datetime | None = None
    tasks: TaskCounts
    instance_types: list[InstanceTypeProgress] = Field(default_factory=list)
    archive_state: ArchiveState = ArchiveState.none
    archive_error: str | None = None
    gzip_url: str | None = None


class StopRequest(Strict):
    """`POST /runs/{run_id}/stop` body (optional): stop only this instance type's tasks
    (the master, when every runner of the type has failed); no body stops the run."""

    provider: Literal["aws", "azure", "local"]
    alias: Name
    reason: Annotated[str, Field(max_length=2000)] | None = None


class RunList(BaseModel):
    runs: list[RunOut]


class TaskList(BaseModel):
    tasks: list[TaskOut]

"""Wire models shared by the orchestrator, the runner and the master.

The run-creation body is the config-file shape rubybencher users already have, so the
same model validates `config/*.json` in the master and `POST /runs` in the orchestrator.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROVIDERS = ("aws", "azure", "local")
# Bounds that fit every backend's integer column (and JSON numbers) exactly.
MAX_RUN_ID = 2**53
MAX_DB_INT = 2**31 - 1
# Top-level config keys that are not providers and not ours; accepted and reported.
KNOWN_KEYS = {
    "run_id",
    "ruby_version",
    "per_instance_type",
    "runs_per_instance_type",
    "benchmarks",
    "max_attempts",
    "prices",
}


class TaskStatus(StrEnum):
    pending = "pending"
    claimed = "claimed"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE_STATUSES = (TaskStatus.claimed, TaskStatus.running)
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- run creation

Name = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]


PriceKey = Annotated[
    str, Field(min_length=1, max_length=140, pattern=r"^([a-z]+/)?[A-Za-z0-9][A-Za-z0-9._:-]*$")
]


class InstanceTypeSpec(_Strict):
    instance_type: Name
    alias: Name | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        # Config files list either {"instance_type", "alias"} objects or plain type names.
        if isinstance(value, str):
            return {"instance_type": value}
        return value

    @property
    def effective_alias(self) -> str:
        return self.alias or self.instance_type


class PerInstanceType(_Strict):
    tasks: int = Field(ge=1, le=10_000)
    instances: int = Field(default=1, ge=1, le=1_000)


class BenchmarkSettings(_Strict):
    names: list[Name] = Field(default_factory=list, max_length=1000)
    categories: list[Name] = Field(default_factory=list, max_length=20)
    warmup_iterations: int | None = Field(default=None, ge=0, le=100_000)
    bench_iterations: int | None = Field(default=None, ge=1, le=100_000)
    min_bench_time: float | None = Field(default=None, ge=0, le=86_400)
    executables: list[Literal["interp", "yjit"]] = Field(
        default_factory=lambda: ["yjit"],  # type: ignore[arg-type]
        min_length=1,
        max_length=2,
    )
    extra_args: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list, max_length=50
    )

    @model_validator(mode="after")
    def _default_category(self) -> BenchmarkSettings:
        # ruby-bench's headline benchmarks unless the user chose names or categories.
        if not self.names and not self.categories:
            self.categories = ["headline"]
        return self


class RunSpec(BaseModel):
    """A run as users write it in config files (unknown top-level keys are collected)."""

    model_config = ConfigDict(extra="allow")

    run_id: int | None = Field(default=None, ge=1, le=MAX_RUN_ID)
    ruby_version: Annotated[
        str, Field(min_length=1, max_length=64, pattern=r"^(system|[0-9][0-9A-Za-z.\-]*)$")
    ]
    per_instance_type: PerInstanceType
    aws: list[InstanceTypeSpec] = Field(default_factory=list, max_length=500)
    azure: list[InstanceTypeSpec] = Field(default_factory=list, max_length=500)
    local: list[InstanceTypeSpec] = Field(default_factory=list, max_length=500)
    benchmarks: BenchmarkSettings = Field(default_factory=BenchmarkSettings)
    # Attempts per task: 2 retries an infrastructure failure once, 1 never retries.
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=MAX_ATTEMPTS_LIMIT)
    # USD per hour by instance type, optionally "provider/type"; used by reports and
    # cost estimates, never by the run itself (so not part of normalized()).
    prices: dict[PriceKey, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=1000
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_runs_per_instance_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and "runs_per_instance_type" in data:
            data = dict(data)
            legacy = data.pop("runs_per_instance_type")
            per = dict(data.get("per_instance_type") or {})
            per.setdefault("tasks", legacy)
            data["per_instance_type"] = per
        return data

    @model_validator(mode="after")
    def _check_providers(self) -> RunSpec:
        unknown = [k for k, v in (self.model_extra or {}).items() if isinstance(v, list)]
        if unknown:
            raise ValueError(
                f"unknown provider {unknown[0]!r}; known providers: {', '.join(PROVIDERS)}"
            )
        if not any(self.instance_types()):
            raise ValueError("at least one instance type is required (aws, azure or local)")
        for provider in PROVIDERS:
            seen: set[tuple[str, str]] = set()
            for spec in getattr(self, provider):
                key = (spec.instance_type, spec.effective_alias)
                if key in seen:
                    raise ValueError(f"{provider}: {spec.instance_type} listed twice")
                seen.add(key)
        return self

    @field_validator("ruby_version")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @property
    def ignored(self) -> list[str]:
        return sorted((self.model_extra or {}).keys())

    def instance_types(self) -> list[tuple[str, InstanceTypeSpec]]:
        return [(p, spec) for p in PROVIDERS for spec in getattr(self, p)]

    def normalized(self) -> dict[str, Any]:
        """The canonical form compared when the same run_id is posted twice."""
        return {
            "ruby_version": self.ruby_version,
            "per_instance_type": self.per_instance_type.model_dump(),
            "instance_types": [
                [p, s.instance_type, s.effective_alias] for p, s in self.instance_types()
            ],
            "benchmarks": self.benchmarks.model_dump(),
            "max_attempts": self.max_attempts,
        }


# ---------------------------------------------------------------- runner protocol


class ClaimRequest(_Strict):
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
    ruby_version: str
    benchmarks: BenchmarkSettings
    lease: int
    attempt: int = 1
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


class PresignedUrls(BaseModel):
    result_upload_url: str
    error_upload_url: str
    result_key: str
    error_key: str


class ClaimResponse(BaseModel):
    status: Literal["assigned", "wait", "done"]
    task: TaskAssignment | None = None
    presigned_urls: PresignedUrls | None = None
    retry_after_seconds: int | None = None


class _Fenced(_Strict):
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
    error_type: str | None = None
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


class RunList(BaseModel):
    runs: list[RunOut]


class TaskList(BaseModel):
    tasks: list[TaskOut]

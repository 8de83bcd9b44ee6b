"""The run config: the file shape rubybencher users already have.

The same model validates `config/*.json` in the master and `POST /runs` in the
orchestrator; `RunSpec.request_body()` is what the master posts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloudbench.protocol.enums import DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS_LIMIT
from cloudbench.protocol.rubybench_args import extra_arg_problem

PROVIDERS = ("aws", "azure", "local")
# Bounds that fit every backend's integer column (and JSON numbers) exactly.
MAX_RUN_ID = 2**53
MAX_DB_INT = 2**31 - 1
# Bounds a person would set (issue 25): one POST /runs once made 200k tasks in 86 s and
# a 120 MB dashboard page. Tasks are per_instance_type.tasks x instance types.
MAX_TASKS_PER_TYPE = 10_000
MAX_TYPES_PER_RUN = 200
MAX_TASKS_PER_RUN = 20_000
# The top-level keys RunSpec reads besides the provider lists (runs_per_instance_type is
# the legacy spelling of per_instance_type.tasks); any other key is collected as ignored.
KNOWN_KEYS = frozenset(
    {
        "run_id",
        "ruby_version",
        "per_instance_type",
        "runs_per_instance_type",
        "benchmarks",
        "max_attempts",
        "prices",
        "budget",
    }
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Name = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]

PriceKey = Annotated[
    str, Field(min_length=1, max_length=140, pattern=r"^([a-z]+/)?[A-Za-z0-9][A-Za-z0-9._:-]*$")
]


class InstanceTypeSpec(Strict):
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


class PerInstanceType(Strict):
    tasks: int = Field(ge=1, le=MAX_TASKS_PER_TYPE)
    instances: int = Field(default=1, ge=1, le=1_000)


# Keys `benchmarks.env` may set: GC/thread/allocator tuning, never the JIT or RUBYOPT.
BENCHMARK_ENV_KEY = re.compile(r"^(RUBY_GC_|RUBY_THREAD_|RUBY_FIBER_|MALLOC_)[A-Z0-9_]+$")


class BenchmarkSettings(Strict):
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
    # Set on purpose for the benchmarks; everything else of the runner's environment is not.
    env: dict[str, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict, max_length=50
    )

    @field_validator("extra_args")
    @classmethod
    def _extra_args_allowlisted(cls, value: list[str]) -> list[str]:
        # Only ruby-bench options that cannot name a program or a file (rubybench_args).
        for arg in value:
            problem = extra_arg_problem(arg)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("env")
    @classmethod
    def _env_allowlisted(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not BENCHMARK_ENV_KEY.match(key):
                raise ValueError(
                    f"benchmarks.env: {key!r} is not allowed; allowed are RUBY_GC_*, "
                    "RUBY_THREAD_*, RUBY_FIBER_* and MALLOC_* (YJIT is chosen with "
                    "benchmarks.executables, not the environment)"
                )
        return value

    @model_validator(mode="after")
    def _default_category(self) -> BenchmarkSettings:
        # ruby-bench's headline benchmarks unless the user chose names or categories.
        if not self.names and not self.categories:
            self.categories = ["headline"]
        return self


class Budget(Strict):
    """Config `budget`: the master refuses a run whose estimate exceeds it.

    max_hours also bounds every cloud VM's hard lifetime.
    """

    max_usd: float | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)
    max_hours: float | None = Field(default=None, gt=0, le=48, allow_inf_nan=False)


class RunSpec(BaseModel):
    """A run as users write it in config files (unknown top-level keys are collected)."""

    model_config = ConfigDict(extra="allow")

    run_id: int | None = Field(default=None, ge=1, le=MAX_RUN_ID)
    ruby_version: Annotated[
        str, Field(min_length=1, max_length=64, pattern=r"^(system|[0-9][0-9A-Za-z.\-]*)$")
    ]
    per_instance_type: PerInstanceType
    aws: list[InstanceTypeSpec] = Field(default_factory=list, max_length=MAX_TYPES_PER_RUN)
    azure: list[InstanceTypeSpec] = Field(default_factory=list, max_length=MAX_TYPES_PER_RUN)
    local: list[InstanceTypeSpec] = Field(default_factory=list, max_length=MAX_TYPES_PER_RUN)
    benchmarks: BenchmarkSettings = Field(default_factory=BenchmarkSettings)
    # Attempts per task: 2 retries an infrastructure failure once, 1 never retries.
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=MAX_ATTEMPTS_LIMIT)
    # USD per hour by instance type, optionally "provider/type"; used by reports and
    # cost estimates, never by the run itself (so not part of normalized()).
    prices: dict[PriceKey, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=1000
    )

    # Master-side only (cost guard), never sent to the orchestrator.
    budget: Budget | None = None

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
        types = len(self.instance_types())
        if not types:
            raise ValueError("at least one instance type is required (aws, azure or local)")
        if types > MAX_TYPES_PER_RUN:
            raise ValueError(
                f"aws + azure + local: {types} instance types; at most {MAX_TYPES_PER_RUN} per run"
            )
        tasks = types * self.per_instance_type.tasks
        if tasks > MAX_TASKS_PER_RUN:
            raise ValueError(
                f"per_instance_type.tasks: {self.per_instance_type.tasks} tasks x {types} "
                f"instance types = {tasks} tasks; at most {MAX_TASKS_PER_RUN} per run"
            )
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

    def request_body(self) -> dict[str, Any]:
        """The POST /runs body: only the known fields, so ignored keys stay local."""
        body: dict[str, Any] = {
            "ruby_version": self.ruby_version,
            "per_instance_type": self.per_instance_type.model_dump(),
            "benchmarks": self.benchmarks.model_dump(exclude_none=True),
            "max_attempts": self.max_attempts,
        }
        if self.run_id is not None:
            body["run_id"] = self.run_id
        for provider in self.providers():
            body[provider] = [s.model_dump(exclude_none=True) for s in getattr(self, provider)]
        return body

    def providers(self) -> list[str]:
        """The providers this run has instance types for, in PROVIDERS order."""
        return [p for p in PROVIDERS if getattr(self, p)]

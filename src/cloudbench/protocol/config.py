"""The run config: the file shape rubybencher users already have.

The same model validates `config/*.json` in the master and `POST /runs` in the
orchestrator; `RunSpec.request_body()` is what the master posts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloudbench.protocol.enums import DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS_LIMIT
from cloudbench.protocol.executables import ExecutableSpec, Jit, as_spec, check_entries
from cloudbench.protocol.rubybench_args import extra_arg_problem

PROVIDERS = ("aws", "azure", "local")
# Bounds that fit every backend's integer column (and JSON numbers) exactly.
MAX_RUN_ID = 2**53
MAX_DB_INT = 2**31 - 1
# Bounds a person would set (issue 25): one POST /runs once made 200k tasks in 86 s and
# a 120 MB dashboard page. A run's tasks are the sum of each type's tasks (its own
# `tasks`, else per_instance_type.tasks).
MAX_TASKS_PER_TYPE = 10_000
MAX_TYPES_PER_RUN = 200
MAX_TASKS_PER_RUN = 20_000
# The top-level keys RunSpec reads besides the provider lists (runs_per_instance_type is
# the legacy spelling of per_instance_type.tasks); any other key is collected as ignored.
KNOWN_KEYS = frozenset(
    {
        "run_id",
        "ruby_version",
        "ruby_versions",
        "per_instance_type",
        "runs_per_instance_type",
        "benchmarks",
        "max_attempts",
        "prices",
        "budget",
        "capacity",
        "max_price",
    }
)
# Issue 27: what a cloud VM is bought as. Spot: interruptible, capped at max_price (USD per
# hour; the on-demand price when not given).
Capacity = Literal["on-demand", "spot"]
MaxPrice = Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Name = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]

PriceKey = Annotated[
    str, Field(min_length=1, max_length=140, pattern=r"^([a-z]+/)?[A-Za-z0-9][A-Za-z0-9._:-]*$")
]


RubyVersion = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^(system|[0-9][0-9A-Za-z.\-]*)$")
]


class InstanceTypeSpec(Strict):
    instance_type: Name
    alias: Name | None = None
    # This type's own counts; per_instance_type applies where they are left out.
    tasks: int | None = Field(default=None, ge=1, le=MAX_TASKS_PER_TYPE)
    instances: int | None = Field(default=None, ge=1, le=1_000)
    # This type's own capacity and spot cap; the config's top-level ones apply otherwise.
    capacity: Capacity | None = None
    max_price: MaxPrice | None = None

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
    # Plain engine names stay strings (old configs keep their exact shape); see columns().
    executables: list[Jit | ExecutableSpec] = Field(
        default_factory=lambda: ["yjit"],  # type: ignore[arg-type]
        min_length=1,
        max_length=12,
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

    @field_validator("executables", mode="before")
    @classmethod
    def _executables(cls, value: Any) -> Any:
        return check_entries(value)

    def columns(self) -> list[ExecutableSpec]:
        """Every executable as {name, jit, options}, in the order given."""
        return [as_spec(e) for e in self.executables]

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns()]

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
    # Exactly one of the two: one Ruby, or several compared in the same run.
    ruby_version: RubyVersion | None = None
    ruby_versions: list[RubyVersion] | None = Field(default=None, min_length=1, max_length=6)
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
    # Master-side only: every cloud type's capacity and spot cap unless its entry says.
    capacity: Capacity = "on-demand"
    max_price: MaxPrice | None = None

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
        self._check_task_total(types)
        self._check_capacity()
        for provider in PROVIDERS:
            seen: set[tuple[str, str]] = set()
            for spec in getattr(self, provider):
                key = (spec.instance_type, spec.effective_alias)
                if key in seen:
                    raise ValueError(f"{provider}: {spec.instance_type} listed twice")
                seen.add(key)
        return self

    def _check_capacity(self) -> None:
        for spec in self.local:
            if spec.capacity == "spot" or spec.max_price is not None:
                raise ValueError(
                    f"local: {spec.instance_type}: capacity and max_price are for aws and "
                    "azure entries (a local runner is this machine); remove them"
                )
        for provider, spec in self.instance_types():
            if provider == "local":
                continue
            if self.max_price_of(spec) is not None and self.capacity_of(provider, spec) != "spot":
                raise ValueError(
                    f"{provider}: {spec.instance_type}: max_price caps a spot price; set "
                    '"capacity": "spot" (for the entry or the whole config) or remove max_price'
                )

    def capacity_of(self, provider: str, spec: InstanceTypeSpec) -> Capacity:
        """The entry's capacity, else the config's; local runners are always on-demand."""
        if provider == "local":
            return "on-demand"
        return spec.capacity or self.capacity

    def max_price_of(self, spec: InstanceTypeSpec) -> float | None:
        """USD per hour a spot VM may cost at most; None: the on-demand price."""
        return spec.max_price if spec.max_price is not None else self.max_price

    def _check_task_total(self, types: int) -> None:
        """Tasks are counted per entry: a type's own `tasks` replaces per_instance_type's."""
        per_type = self.per_instance_type.tasks
        tasks = sum(self.counts(spec).tasks for _, spec in self.instance_types())
        if tasks <= MAX_TASKS_PER_RUN:
            return
        if all(spec.tasks is None for _, spec in self.instance_types()):
            raise ValueError(
                f"per_instance_type.tasks: {per_type} tasks x {types} "
                f"instance types = {tasks} tasks; at most {MAX_TASKS_PER_RUN} per run"
            )
        raise ValueError(
            f"tasks: {tasks} tasks over {types} instance types (each type's own tasks, "
            f"else per_instance_type.tasks = {per_type}); at most {MAX_TASKS_PER_RUN} per run"
        )

    @field_validator("ruby_version", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _one_ruby_key(cls, data: Any) -> Any:
        # Before the fields: with neither key, pydantic would report nothing about Ruby.
        if not isinstance(data, dict):
            return data
        one, many = data.get("ruby_version") is not None, data.get("ruby_versions") is not None
        if one == many:
            both = one
            problem = "ruby_version and ruby_versions are both given" if both else "missing"
            raise ValueError(
                f"ruby_version: {problem}; give exactly one of ruby_version "
                '("3.4") and ruby_versions (["3.4", "4.0"])'
            )
        return data

    @model_validator(mode="after")
    def _rubies_distinct(self) -> RunSpec:
        rubies = self.ruby_versions or []
        if len(",".join(rubies)) > 64:
            raise ValueError("ruby_versions: at most 64 characters in all; list fewer Rubies")
        for ruby in rubies:
            if rubies.count(ruby) > 1:
                raise ValueError(f"ruby_versions: {ruby!r} is listed twice; list each Ruby once")
        return self

    @property
    def rubies(self) -> list[str]:
        """The Rubies this run compares, in the order given (one for ruby_version)."""
        return list(self.ruby_versions) if self.ruby_versions else [str(self.ruby_version)]

    def counts(self, spec: InstanceTypeSpec) -> PerInstanceType:
        """Tasks and instances for one instance type: its own, else per_instance_type."""
        return PerInstanceType(
            tasks=spec.tasks or self.per_instance_type.tasks,
            instances=spec.instances or self.per_instance_type.instances,
        )

    @property
    def ignored(self) -> list[str]:
        return sorted((self.model_extra or {}).keys())

    def instance_types(self) -> list[tuple[str, InstanceTypeSpec]]:
        return [(p, spec) for p in PROVIDERS for spec in getattr(self, p)]

    def normalized(self) -> dict[str, Any]:
        """The canonical form compared when the same run_id is posted twice."""
        return {
            **self._ruby_keys(),
            "per_instance_type": self.per_instance_type.model_dump(),
            "instance_types": [
                [p, s.instance_type, s.effective_alias]
                + ([s.tasks, s.instances] if s.tasks or s.instances else [])
                for p, s in self.instance_types()
            ],
            "benchmarks": self.benchmarks.model_dump(),
            "max_attempts": self.max_attempts,
        }

    def request_body(self) -> dict[str, Any]:
        """The POST /runs body: only the known fields, so ignored keys stay local."""
        body: dict[str, Any] = {
            **self._ruby_keys(),
            "per_instance_type": self.per_instance_type.model_dump(),
            "benchmarks": self.benchmarks.model_dump(exclude_none=True),
            "max_attempts": self.max_attempts,
        }
        if self.run_id is not None:
            body["run_id"] = self.run_id
        for provider in self.providers():
            body[provider] = [s.model_dump(exclude_none=True) for s in getattr(self, provider)]
        return body

    def _ruby_keys(self) -> dict[str, Any]:
        if self.ruby_versions:
            return {"ruby_versions": list(self.ruby_versions)}
        return {"ruby_version": self.ruby_version}

    def providers(self) -> list[str]:
        """The providers this run has instance types for, in PROVIDERS order."""
        return [p for p in PROVIDERS if getattr(self, p)]

"""Runner settings: every option is a CLOUDBENCH_* environment variable (cloud user-data)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# ruby-bench commit the fixtures were recorded with; the image is built from exactly this.
RUBY_BENCH_COMMIT = "09b76c8b0f94c8182080cdae01e95151f0e22dd9"
RUBY_BENCH_REPO = "https://github.com/ruby/ruby-bench.git"

Slots = Literal["auto", "physical"] | int


class RunnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDBENCH_", extra="ignore")

    # No default: a runner without a token must not start.
    runner_token: SecretStr
    orchestrator_url: str = "http://127.0.0.1:8000"
    provider: Literal["aws", "azure", "local"] = "local"
    # None: "local" for the local provider, read from IMDSv2 on AWS.
    instance_type: str | None = None
    alias: str | None = None
    run_id: int | None = None
    slots: Slots = "auto"
    executor: Literal["docker", "host", "auto"] = "auto"
    # A git URL (optionally URL@ref) or a local directory (offline machines, tests).
    ruby_bench: str = RUBY_BENCH_REPO
    ruby_bench_commit: str = RUBY_BENCH_COMMIT
    work_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "cloudbench-runner")
    debug: bool = False
    shutdown_on_done: bool = False
    heartbeat_interval: float = Field(default=30.0, gt=0)
    task_timeout: float = Field(default=6 * 3600.0, gt=0)
    unreachable_give_up: float = Field(default=600.0, ge=0)

    @property
    def resolved_instance_type(self) -> str:
        if self.instance_type is None:
            raise ValueError("instance_type is not resolved (see cli.resolve_instance_type)")
        return self.instance_type

    @field_validator("slots", mode="before")
    @classmethod
    def _parse_slots(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and value < 1:
            raise ValueError("slots must be >= 1, 'auto' or 'physical'")
        return value

    @field_validator("runner_token")
    @classmethod
    def _token_present(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("orchestrator_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

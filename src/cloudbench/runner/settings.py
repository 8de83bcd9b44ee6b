"""Runner settings: every option is a CLOUDBENCH_* environment variable (cloud user-data)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# ruby-bench commit the fixtures were recorded with; the image is built from exactly this.
RUBY_BENCH_COMMIT = "09b76c8b0f94c8182080cdae01e95151f0e22dd9"
RUBY_BENCH_REPO = "https://github.com/ruby/ruby-bench.git"

Slots = Literal["auto", "physical", "logical"] | int


class RunnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDBENCH_", extra="ignore")

    # No default: a runner without a token must not start.
    runner_token: SecretStr
    orchestrator_url: str = "http://127.0.0.1:8000"
    # The orchestrator's own certificate (PEM), trusted instead of the system's CAs: a
    # cloud deployment's self-signed one, which the boot script writes (platform/tls.py).
    tls_ca_file: Path | None = None
    provider: Literal["aws", "azure", "local"] = "local"
    # None: "local" for the local provider, read from IMDSv2 on AWS.
    instance_type: str | None = None
    alias: str | None = None
    run_id: int | None = None
    # A cloud VM's instance id (EC2 instance id, Azure VM name), set by its user-data:
    # with a run id, the runner reports this machine's stage (runner/machine_report.py).
    instance_id: str | None = None
    slots: Slots = "physical"
    # CPUs for the runner's own threads: auto (the last core when there are several),
    # none (share the benchmark CPUs), or a CPU list such as "7,15".
    housekeeping_cpus: str = "auto"
    # Pin the container engine's daemons and helpers to the housekeeping CPUs. None: yes,
    # except for the local provider, whose engine is the user's own (their other containers
    # would be confined to those CPUs while the runner lives).
    pin_engine: bool | None = None
    # Pins the official image: built FROM ruby:<version>@<digest> (one Ruby per runner).
    ruby_image_digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    # The repository of the official Ruby images (`ruby`: Docker Hub's), or a mirror of it
    # with the same tags (`REGISTRY/ruby`); images are `<ruby_image>:<version>`.
    ruby_image: str = "ruby"
    executor: Literal["docker", "host", "auto"] = "auto"
    # One benchmark image for many machines (executors/image_archive.py): load this
    # benchmark-<sha256>.tar instead of building when it holds the image a task needs;
    # save every image this runner uses into that folder (digest-named).
    image_archive: Path | None = None
    save_images: Path | None = None
    # A git URL (optionally URL@ref) or a local directory (offline machines, tests).
    ruby_bench: str = RUBY_BENCH_REPO
    ruby_bench_commit: str = RUBY_BENCH_COMMIT
    work_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "cloudbench-runner")
    # Runner variables handed to the benchmarks on purpose (recorded); never RUBY*/LD_*.
    # Comma-separated names, e.g. CLOUDBENCH_PASS_ENV=FAKE_BENCH_SLEEP.
    pass_env: str = ""
    debug: bool = False
    shutdown_on_done: bool = False
    heartbeat_interval: float = Field(default=30.0, gt=0)
    task_timeout: float = Field(default=6 * 3600.0, gt=0)
    unreachable_give_up: float = Field(default=600.0, ge=0)
    # Seconds to wait for a container engine whose socket exists but does not answer yet
    # (a daemon starting at boot, a socket slow under load) before giving up on it.
    engine_wait: float = Field(default=120.0, ge=0)
    # Seconds to sleep on a "wait" claim answer that carries no retry_after_seconds.
    wait_default: float = Field(default=10.0, gt=0)

    @property
    def pins_engine(self) -> bool:
        return self.provider != "local" if self.pin_engine is None else self.pin_engine

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
            raise ValueError("slots must be >= 1, 'physical', 'logical' or 'auto'")
        return value

    @field_validator("ruby_image")
    @classmethod
    def _ruby_image(cls, value: str) -> str:
        repository = r"[a-z0-9]([a-z0-9._/-]*[a-z0-9])?(:[0-9]+/[a-z0-9._/-]*[a-z0-9])?"
        if not re.fullmatch(repository, value):
            raise ValueError(
                "must be an image repository without tag or digest, such as ruby or "
                "registry.example.com:5000/mirror/ruby (the Ruby version is the tag)"
            )
        return value

    @field_validator("housekeeping_cpus")
    @classmethod
    def _housekeeping(cls, value: str) -> str:
        value = value.strip()
        if value not in ("auto", "none") and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
            raise ValueError("must be auto, none or a CPU list such as 3 or 6-7")
        return value

    @property
    def pass_env_names(self) -> list[str]:
        return [v.strip() for v in self.pass_env.split(",") if v.strip()]

    @field_validator("pass_env")
    @classmethod
    def _pass_env(cls, value: str) -> str:
        for name in (v.strip() for v in value.split(",")):
            if re.match(r"^(RUBY|LD_|GEM_|BUNDLE|WARMUP_ITRS|MIN_BENCH|CLOUDBENCH_)", name):
                raise ValueError(
                    f"{name} may not be passed: choose YJIT with benchmarks.executables and "
                    "tuning with benchmarks.env in the config"
                )
        return value

    @field_validator("runner_token")
    @classmethod
    def _token_present(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file (the orchestrator's certificate, PEM)")
        return value

    @field_validator("orchestrator_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

"""Orchestrator settings (environment prefix ``CLOUDBENCH_``). Tokens have no defaults."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "cloudbench"


class OrchestratorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDBENCH_", extra="ignore")

    state_dir: Path = Field(default_factory=default_state_dir)
    database_url: str | None = None
    admin_token: SecretStr | None = None
    runner_token: SecretStr | None = None
    heartbeat_timeout: float = Field(default=120.0, gt=0)
    sweep_interval: float = Field(default=30.0, gt=0)
    public_url: str | None = None
    storage_url: str | None = None
    # Signs local-storage URLs and dashboard sessions; derived from the admin token if unset.
    secret_key: SecretStr | None = None
    max_upload_bytes: int = Field(default=1 << 30, gt=0)
    # Upload URLs must outlive the longest task (a full ruby-bench run can take hours).
    task_max_duration: int = Field(default=12 * 3600, gt=0)
    s3_region: str | None = None
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    # Wheels served at /dist/ for runners (the production image sets it).
    dist_dir: Path | None = None
    # Database connections per server process: half for the direct claim/heartbeat path
    # (Postgres), the rest (plus as many again in overflow) for the sync engine. serve runs
    # one process per CPU. See docs/architecture.md, "Database connections".
    db_pool_size: int = Field(default=20, ge=1)
    # Postgres: the common claim and heartbeat skip FastAPI and SQLAlchemy (api/fast.py).
    # Off is the same API, slower; kept for comparison (benchmarks/claims.py) and tests.
    direct_hot_path: bool = True

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.state_dir / 'orchestrator.sqlite3'}"

    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{self.state_dir / 'storage'}"

    def missing_secrets(self) -> list[str]:
        missing = []
        if not self.admin_token or not self.admin_token.get_secret_value():
            missing.append("CLOUDBENCH_ADMIN_TOKEN")
        if not self.runner_token or not self.runner_token.get_secret_value():
            missing.append("CLOUDBENCH_RUNNER_TOKEN")
        return missing

    def token_matches(self, given: str, role: Literal["admin", "runner"]) -> bool:
        """Constant-time comparison; an unset token matches nothing."""
        expected = self.admin_token if role == "admin" else self.runner_token
        secret = expected.get_secret_value() if expected else ""
        return bool(secret) and hmac.compare_digest(given.strip().encode(), secret.encode())

    def signing_key(self, purpose: str) -> bytes:
        """A per-purpose key, so one leaked signature type cannot forge another."""
        base = self.secret_key or self.admin_token
        if base is None:
            raise RuntimeError("no secret configured")
        return hmac.new(base.get_secret_value().encode(), purpose.encode(), hashlib.sha256).digest()

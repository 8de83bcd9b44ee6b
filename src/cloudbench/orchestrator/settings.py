"""Orchestrator settings (environment prefix ``CLOUDBENCH_``). Tokens have no defaults."""

from __future__ import annotations

import hashlib
import hmac
import math
import string
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloudbench.platform.state import cloudbench_home

MIN_TOKEN_BITS = 128
MIN_DISTINCT_CHARS = 8
# Alphabets a token is measured against, smallest first: a token's entropy is taken as
# len(token) * log2(size of the smallest alphabet holding all its characters).
_ALPHABETS = (
    string.digits,
    "0123456789abcdef",
    "0123456789ABCDEF",
    string.ascii_lowercase + string.digits,
    string.ascii_uppercase + string.digits,
    string.ascii_letters + string.digits,
    string.ascii_letters + string.digits + "-_",
    string.ascii_letters + string.digits + "+/=",
    string.printable.strip(),
)
TOKEN_RULE = (
    f"at least {MIN_TOKEN_BITS} bits: length x log2(alphabet), e.g. 32 hex digits, "
    f"22 base64url or 22 alphanumeric characters, with at least {MIN_DISTINCT_CHARS} "
    "different characters (`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
)


def token_bits(token: str) -> float:
    """Estimated entropy of a token: its length times log2 of its alphabet's size."""
    chars = set(token)
    size = next((len(set(a)) for a in _ALPHABETS if chars <= set(a)), 256)
    return len(token) * math.log2(size)


def token_problem(name: str, token: str) -> str | None:
    bits = token_bits(token)
    if bits < MIN_TOKEN_BITS or len(set(token)) < MIN_DISTINCT_CHARS:
        return f"{name} is too weak (~{bits:.0f} bits); it needs {TOKEN_RULE}"
    return None


def default_data_dir() -> Path:
    """The embedded orchestrator's database and storage: CLOUDBENCH_HOME (the master's
    state home), so one setting moves everything cloudbench keeps."""
    return cloudbench_home()


class OrchestratorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDBENCH_", extra="ignore")

    state_dir: Path = Field(default_factory=default_data_dir)
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

    def secret_problems(self) -> list[str]:
        """Why the server must not start with these tokens: missing, weak, or equal (an
        equal runner token would be read as the admin's on every runner call)."""
        missing = self.missing_secrets()
        if missing:
            return [f"refusing to start without {', '.join(missing)}"]
        assert self.admin_token is not None and self.runner_token is not None
        admin, runner = self.admin_token.get_secret_value(), self.runner_token.get_secret_value()
        problems = [
            problem
            for name, token in (
                ("CLOUDBENCH_ADMIN_TOKEN", admin),
                ("CLOUDBENCH_RUNNER_TOKEN", runner),
            )
            if (problem := token_problem(name, token))
        ]
        if hmac.compare_digest(admin.encode(), runner.encode()):
            problems.append("CLOUDBENCH_ADMIN_TOKEN and CLOUDBENCH_RUNNER_TOKEN must differ")
        return problems

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

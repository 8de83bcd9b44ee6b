"""ORM models for runs and tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cloudbench.protocol import ArchiveState, ErrorType, HeartbeatStatus, RunStatus, TaskStatus

E = TypeVar("E", bound=StrEnum)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive UTC strings)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class EnumText(TypeDecorator[E]):
    """A protocol enum stored as its plain string value (VARCHAR, no CHECK, no native type).

    The schema stays what migration 0001 created on both backends; rows read back as
    enum members, and a value outside the enum is refused before it reaches the database.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    ruby_version: Mapped[str] = mapped_column(String(64))
    tasks_per_instance_type: Mapped[int] = mapped_column(Integer)
    instances_per_instance_type: Mapped[int] = mapped_column(Integer)
    benchmarks: Mapped[dict[str, Any]]
    # Normalised request body: a repeated POST with the same run_id is compared to it.
    spec: Mapped[dict[str, Any]]
    status: Mapped[RunStatus] = mapped_column(EnumText(RunStatus, 16), default=RunStatus.running)
    removed_tasks: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=2, server_default=text("2"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    finished_at: Mapped[datetime | None]
    archive_state: Mapped[ArchiveState] = mapped_column(
        EnumText(ArchiveState, 16), default=ArchiveState.none
    )
    archive_key: Mapped[str | None] = mapped_column(String(1024))
    archive_error: Mapped[str | None] = mapped_column(Text)
    archive_started_at: Mapped[datetime | None]
    # The ruby-bench suite the master shipped with the run (api/suite.py), when it did.
    ruby_bench_sha256: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_runs_status", "status"),)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))
    instance_type: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(128))
    run_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[TaskStatus] = mapped_column(EnumText(TaskStatus, 16), default=TaskStatus.pending)
    # While pending again after a retryable failure, runner_id/runner_host name the
    # runner that failed it: the claim prefers another host, and that runner gets 409.
    runner_id: Mapped[str | None] = mapped_column(String(200))
    runner_host: Mapped[str | None] = mapped_column(String(200))
    lease: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    claimed_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    heartbeat_status: Mapped[HeartbeatStatus | None] = mapped_column(EnumText(HeartbeatStatus, 16))
    current_benchmark: Mapped[str | None] = mapped_column(String(200))
    progress_pct: Mapped[float | None] = mapped_column(Float)
    heartbeat_message: Mapped[str | None] = mapped_column(Text)
    # Migration 0002 mapped free-text types from before ErrorType was enforced.
    error_type: Mapped[ErrorType | None] = mapped_column(EnumText(ErrorType, 64))
    error_message: Mapped[str | None] = mapped_column(Text)
    result_key: Mapped[str | None] = mapped_column(String(1024))
    error_key: Mapped[str | None] = mapped_column(String(1024))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("run_id", "provider", "instance_type", "alias", "run_number"),
        # The claim query's hot path: pending tasks of one provider/instance type.
        Index(
            "ix_tasks_pending",
            "provider",
            "instance_type",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # The sweeper's hot path: active tasks by heartbeat age.
        Index(
            "ix_tasks_active_heartbeat",
            "heartbeat_at",
            postgresql_where=text("status IN ('claimed', 'running')"),
            sqlite_where=text("status IN ('claimed', 'running')"),
        ),
        Index("ix_tasks_run_status", "run_id", "status"),
    )


class TaskAttempt(Base):
    """One ended attempt at a task (the current one lives on the task row itself)."""

    __tablename__ = "task_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    runner_id: Mapped[str | None] = mapped_column(String(200))
    runner_host: Mapped[str | None] = mapped_column(String(200))
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("task_id", "attempt"),)


class ServerProcess(Base):
    """An orchestrator process's uptime, so the sweeper never counts its own downtime
    (or the database's) as runner silence."""

    __tablename__ = "server_processes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Start of this process's current unbroken stretch of database contact.
    up_since: Mapped[datetime]
    last_seen_at: Mapped[datetime]

    __table_args__ = (Index("ix_server_processes_last_seen", "last_seen_at"),)


class Machine(Base):
    """A runner machine (cloud VM) of a run, as it last reported itself (boot stages)."""

    __tablename__ = "machines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(16))
    instance_type: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(128))
    host: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[HeartbeatStatus] = mapped_column(EnumText(HeartbeatStatus, 16))
    stage_since: Mapped[datetime]
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    message: Mapped[str | None] = mapped_column(Text)
    log_tail: Mapped[str | None] = mapped_column(Text)
    # Boot stages (protocol.BOOT_STAGES): name → ISO time, the first report of each kept.
    stages: Mapped[dict[str, Any] | None]

    __table_args__ = (UniqueConstraint("run_id", "instance_id"),)


class RevokedSession(Base):
    """A dashboard session ended by logout: its signed cookie no longer logs anyone in."""

    __tablename__ = "revoked_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    # When the cookie would have expired anyway; the row can go after that.
    expires_at: Mapped[datetime]


class LoginFailure(Base):
    """A refused dashboard login, counted per client to throttle guessing."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime]

    __table_args__ = (Index("ix_login_failures_client", "client", "failed_at"),)

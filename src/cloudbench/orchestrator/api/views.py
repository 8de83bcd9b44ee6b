"""ORM rows → wire models."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cloudbench.orchestrator.db import attempts
from cloudbench.orchestrator.db.models import Run, Task, TaskAttempt
from cloudbench.orchestrator.db.runs import GroupStats, group_stats
from cloudbench.orchestrator.storage.base import Storage
from cloudbench.protocol import (
    ArchiveState,
    AttemptOut,
    AttemptOutcome,
    BenchmarkSettings,
    InstanceTypeProgress,
    PerInstanceType,
    RunOut,
    TaskCounts,
    TaskOut,
)

# A download link for the master; short-lived because GET /runs/{id} re-signs it.
GZIP_URL_TTL = 3600


def counts_of(groups: list[GroupStats], removed: int) -> TaskCounts:
    total: dict[str, int] = {}
    for g in groups:
        for status, n in g.counts.items():
            total[status] = total.get(status, 0) + n
    return TaskCounts(total=sum(total.values()), removed=removed, **total)


def run_out(run: Run, groups: list[GroupStats], storage: Storage | None) -> RunOut:
    gzip_url = None
    if storage is not None and run.archive_state == ArchiveState.ready and run.archive_key:
        gzip_url = storage.presign_get(run.archive_key, GZIP_URL_TTL)
    return RunOut(
        run_id=run.external_id,
        status=run.status,
        ruby_version=run.ruby_version,
        per_instance_type=PerInstanceType(
            tasks=run.tasks_per_instance_type, instances=run.instances_per_instance_type
        ),
        benchmarks=BenchmarkSettings.model_validate(run.benchmarks),
        max_attempts=run.max_attempts,
        created_at=run.created_at,
        finished_at=run.finished_at,
        tasks=counts_of(groups, run.removed_tasks),
        instance_types=[
            InstanceTypeProgress(
                provider=g.provider,
                instance_type=g.instance_type,
                alias=g.alias,
                counts=counts_of([g], 0),
                current_benchmarks=g.current_benchmarks,
                oldest_heartbeat_at=g.oldest_heartbeat_at,
                running_progress=g.running_progress,
            )
            for g in groups
        ],
        archive_state=run.archive_state,
        archive_error=run.archive_error,
        gzip_url=gzip_url,
    )


def runs_out(session: Session, runs: list[Run], storage: Storage | None) -> list[RunOut]:
    stats = group_stats(session=session, run_pks=[r.id for r in runs])
    return [run_out(r, stats.get(r.id, []), storage) for r in runs]


def task_out(task: Task, run: Run, ended: list[TaskAttempt] | None = None) -> TaskOut:
    """The task with its attempts: the ended ones from the history, then the current."""
    data = {c.key: getattr(task, c.key) for c in Task.__table__.columns}
    data["run_id"] = run.external_id
    data["max_attempts"] = run.max_attempts
    history = [attempts.to_wire(a) for a in ended or []]
    if task.status in ("claimed", "running"):
        history.append(
            AttemptOut(
                attempt=task.attempt,
                outcome=AttemptOutcome.running,
                runner_id=task.runner_id,
                host=task.runner_host,
                started_at=task.claimed_at,
            )
        )
    data["attempts"] = history
    return TaskOut.model_validate(data)


def task_out_from_row(data: dict[str, Any]) -> TaskOut:
    """A heartbeat's RETURNING row (task columns, run_external_id, run_max_attempts) →
    the task with its current attempt (the heartbeat's response carries no history)."""
    data["run_id"] = data.pop("run_external_id")
    data["max_attempts"] = data.pop("run_max_attempts")
    if data["status"] in ("claimed", "running"):
        data["attempts"] = [
            AttemptOut(
                attempt=data["attempt"],
                outcome=AttemptOutcome.running,
                runner_id=data["runner_id"],
                host=data["runner_host"],
                started_at=data["claimed_at"],
            )
        ]
    return TaskOut.model_validate(data)

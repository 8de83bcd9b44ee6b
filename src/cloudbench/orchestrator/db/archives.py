"""The results archive's row state: pending → building → ready | failed.

A run reaching a terminal state sets ``archive_state = 'pending'`` in the same transaction
(db/queue.py, db/runs.py). Builders claim a build with a conditional update, so two
triggers, two server processes or a retry after a crash still build it exactly once.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloudbench.orchestrator.archive import ArchiveTask
from cloudbench.orchestrator.db import attempts
from cloudbench.orchestrator.db.clock import db_now, db_now_minus
from cloudbench.orchestrator.db.models import Run, Task
from cloudbench.protocol import ArchiveState

# A build still "building" after this long belongs to a server that died mid-build.
STALE_BUILD_SECONDS = 1800


def pending_builds(*, session: Session) -> list[int]:
    """Internal ids of runs whose archive waits to be built."""
    stmt = select(Run.id).where(Run.archive_state == ArchiveState.pending).order_by(Run.id)
    return list(session.execute(stmt).scalars())


def claim_build(*, session: Session, run_pk: int) -> bool:
    """pending → building; True only for the one caller that won."""
    stmt = (
        update(Run)
        .where(Run.id == run_pk, Run.archive_state == ArchiveState.pending)
        .values(archive_state=ArchiveState.building, archive_started_at=db_now(session))
    )
    return bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]


def requeue_stale_builds(*, session: Session) -> int:
    stmt = (
        update(Run)
        .where(
            Run.archive_state == ArchiveState.building,
            Run.archive_started_at < db_now_minus(session, STALE_BUILD_SECONDS),
        )
        .values(archive_state=ArchiveState.pending)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def archive_inputs(*, session: Session, run_pk: int) -> tuple[int, int, list[ArchiveTask]]:
    """(run id users see, removed task count, every task) for the archive builder."""
    run = session.get(Run, run_pk)
    assert run is not None
    rows = session.execute(select(Task).where(Task.run_id == run_pk).order_by(Task.id)).scalars()
    ended = attempts.history(session=session, run_pk=run_pk)
    tasks = [
        ArchiveTask(
            task_id=t.id,
            provider=t.provider,
            instance_type=t.instance_type,
            alias=t.alias,
            run_number=t.run_number,
            status=t.status,
            error_type=t.error_type,
            error_message=t.error_message,
            result_key=t.result_key,
            error_key=t.error_key,
            attempt=t.attempt,
            ruby_versions=tuple(run.ruby_version.split(",")),
            attempts=tuple(
                attempts.to_wire(a).model_dump(mode="json") for a in ended.get(t.id, [])
            ),
        )
        for t in rows
    ]
    return run.external_id, run.removed_tasks, tasks


def record_build(
    *, session: Session, run_pk: int, key: str | None, error: str | None = None
) -> None:
    """The build's outcome: ready with its storage key, or failed with the reason."""
    state = ArchiveState.ready if key is not None else ArchiveState.failed
    session.execute(
        update(Run)
        .where(Run.id == run_pk)
        .values(archive_state=state, archive_error=error, archive_key=key)
    )

"""Run finalization side effects: the results archive, built once, in the background.

A run reaching a terminal state sets ``archive_state = 'pending'`` in the same transaction.
Builders claim the build with a conditional update (pending → building), so two triggers,
two server processes or a retry after a crash still build it exactly once.
"""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cloudbench.orchestrator.archive import ArchiveTask, build_archive
from cloudbench.orchestrator.db import attempts
from cloudbench.orchestrator.db.clock import db_now, db_now_minus
from cloudbench.orchestrator.db.models import Run, Task
from cloudbench.orchestrator.storage.base import Storage, archive_key
from cloudbench.protocol import ArchiveState

logger = logging.getLogger(__name__)

# A build still "building" after this long belongs to a server that died mid-build.
STALE_BUILD_SECONDS = 1800


class ArchiveWorker:
    """One background thread per server process that builds pending archives.

    Not a per-request background task: those run before the request's own session is
    released, which on SQLite would wait on that session's lock.
    """

    def __init__(self, factory: sessionmaker[Session], storage: Storage) -> None:
        self._factory, self._storage = factory, storage
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive")

    def trigger(self) -> Future[list[int]]:
        return self._pool.submit(self._run)

    def _run(self) -> list[int]:
        try:
            return build_pending_archives(self._factory, self._storage)
        except Exception:  # the maintenance loop retries pending builds
            logger.exception("archive build pass failed")
            return []

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def schedule_archive(app: FastAPI) -> None:
    app.state.archiver.trigger()


def build_pending_archives(factory: sessionmaker[Session], storage: Storage) -> list[int]:
    """Build every pending archive this process manages to claim; returns run ids built."""
    built = []
    with factory() as session:
        pending = list(
            session.execute(
                select(Run.id).where(Run.archive_state == ArchiveState.pending.value)
            ).scalars()
        )
    for run_pk in pending:
        if _claim_build(factory, run_pk):
            built.append(_build_one(factory, storage, run_pk))
    return built


def requeue_stale_builds(*, session: Session) -> int:
    stmt = (
        update(Run)
        .where(
            Run.archive_state == ArchiveState.building.value,
            Run.archive_started_at < db_now_minus(session, STALE_BUILD_SECONDS),
        )
        .values(archive_state=ArchiveState.pending.value)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def _claim_build(factory: sessionmaker[Session], run_pk: int) -> bool:
    with factory() as session:
        stmt = (
            update(Run)
            .where(Run.id == run_pk, Run.archive_state == ArchiveState.pending.value)
            .values(archive_state=ArchiveState.building.value, archive_started_at=db_now(session))
        )
        won = bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]
        session.commit()
        return won


def _archive_inputs(session: Session, run_pk: int) -> tuple[int, int, list[ArchiveTask]]:
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
            attempts=tuple(
                attempts.to_wire(a).model_dump(mode="json") for a in ended.get(t.id, [])
            ),
        )
        for t in rows
    ]
    return run.external_id, run.removed_tasks, tasks


def _build_one(factory: sessionmaker[Session], storage: Storage, run_pk: int) -> int:
    with factory() as session:
        external_id, removed, tasks = _archive_inputs(session, run_pk)
    state, error = ArchiveState.ready.value, None
    try:
        with tempfile.TemporaryDirectory(prefix="cloudbench-archive-") as workdir:
            build_archive(
                storage=storage,
                run_id=external_id,
                tasks=tasks,
                removed_tasks=removed,
                workdir=Path(workdir),
            )
        logger.info("archive for run %s ready (%d tasks)", external_id, len(tasks))
    except Exception as exc:  # a failed build is recorded on the run, never lost
        logger.exception("archive for run %s failed", external_id)
        state, error = ArchiveState.failed.value, f"{type(exc).__name__}: {exc}"
    with factory() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_pk)
            .values(
                archive_state=state,
                archive_error=error,
                archive_key=archive_key(external_id) if state == "ready" else None,
            )
        )
        session.commit()
    return external_id

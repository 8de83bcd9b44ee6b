"""Run finalization side effects: the results archive, built once, in the background.

The archive's row state and its SQL are db/archives.py; this module owns the thread
that builds and the transactions around each step.
"""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from cloudbench.orchestrator.archive import build_archive
from cloudbench.orchestrator.db import archives as db_archives
from cloudbench.orchestrator.storage.base import Storage, archive_key

logger = logging.getLogger(__name__)


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
    with factory() as session:
        pending = db_archives.pending_builds(session=session)
    built = []
    for run_pk in pending:
        with factory() as session:
            won = db_archives.claim_build(session=session, run_pk=run_pk)
            session.commit()
        if won:
            built.append(_build_one(factory, storage, run_pk))
    return built


def _build_one(factory: sessionmaker[Session], storage: Storage, run_pk: int) -> int:
    with factory() as session:
        external_id, removed, tasks = db_archives.archive_inputs(session=session, run_pk=run_pk)
    key: str | None = archive_key(external_id)
    error = None
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
        key, error = None, f"{type(exc).__name__}: {exc}"
    with factory() as session:
        db_archives.record_build(session=session, run_pk=run_pk, key=key, error=error)
        session.commit()
    return external_id

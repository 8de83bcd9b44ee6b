"""Periodic upkeep: fail silent tasks, finalize runs, build pending archives."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from cloudbench.orchestrator.db import queue
from cloudbench.orchestrator.db.archives import requeue_stale_builds

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    timed_out_runs: list[int]
    finalized_runs: list[int]


def sweep_once(factory: sessionmaker[Session], timeout_seconds: float) -> SweepResult:
    """One sweep; safe to run from several processes at once (single-statement updates)."""
    with factory() as session:
        runs = queue.sweep_timed_out(session=session, timeout_seconds=timeout_seconds)
        session.commit()
    finalized = []
    for run_pk in runs:
        with factory() as session:
            if queue.finalize_if_done(session=session, run_pk=run_pk):
                finalized.append(run_pk)
            session.commit()
    with factory() as session:
        finalized += queue.finalize_stragglers(session=session)
        requeue_stale_builds(session=session)
        session.commit()
    if runs:
        logger.warning("sweeper: timed out tasks in runs %s", runs)
    return SweepResult(timed_out_runs=runs, finalized_runs=finalized)


async def maintenance_loop(
    factory: sessionmaker[Session],
    build_archives: Callable[[], object],
    timeout: float,
    interval: float,
) -> None:
    """Sweep every interval; pending archives (e.g. left by a crash) go to the archive
    worker's thread, so a long build never delays the next sweep."""
    while True:
        try:
            await asyncio.to_thread(sweep_once, factory, timeout)
            build_archives()
        except Exception:  # keep sweeping through a database blip
            logger.exception("maintenance pass failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)

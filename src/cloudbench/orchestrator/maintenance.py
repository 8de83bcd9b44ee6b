"""Periodic upkeep: fail silent tasks, finalize runs, build pending archives."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from cloudbench.orchestrator.db import queue, servers
from cloudbench.orchestrator.db.archives import requeue_stale_builds

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    timed_out_runs: list[int]
    finalized_runs: list[int]
    # False while the servers have been up for less than the timeout (after a restart).
    swept: bool = True


def liveness_grace(timeout_seconds: float, interval_seconds: float) -> float:
    """How long a server may go unmarked and still count as up: two missed passes, but
    never so long that an outage could eat most of a runner's timeout."""
    return min(2 * interval_seconds + 1, timeout_seconds / 2)


def sweep_once(
    factory: sessionmaker[Session],
    timeout_seconds: float,
    *,
    server_id: str | None = None,
    interval_seconds: float = 30.0,
) -> SweepResult:
    """One sweep; safe to run from several processes at once.

    server_id (a serving process) first records that it is up. Runner silence only counts
    while a server was up: until the servers have been up without a break for the
    timeout (e.g. just after a restart), nothing times out.
    """
    grace = liveness_grace(timeout_seconds, interval_seconds)
    runs: list[int] = []
    with factory() as session:
        if server_id is not None:
            servers.mark_alive(session=session, server_id=server_id, gap_seconds=grace)
        up_for = servers.up_for_seconds(session=session, gap_seconds=grace)
        swept = up_for >= timeout_seconds
        if swept:
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
    return SweepResult(timed_out_runs=runs, finalized_runs=finalized, swept=swept)


async def maintenance_loop(
    factory: sessionmaker[Session],
    build_archives: Callable[[], object],
    timeout: float,
    interval: float,
) -> None:
    """Sweep every interval; pending archives (e.g. left by a crash) go to the archive
    worker's thread, so a long build never delays the next sweep."""
    server_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"
    while True:
        try:
            await asyncio.to_thread(
                sweep_once, factory, timeout, server_id=server_id, interval_seconds=interval
            )
            build_archives()
        except Exception:  # keep sweeping through a database blip
            logger.exception("maintenance pass failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)

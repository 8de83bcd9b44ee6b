"""db/batch.py on a real Postgres: concurrent claims of one kind share statements, each
claimer gets its own task in id order, and no claimer gets a task its batch failed."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from cloudbench.orchestrator.db import batch
from cloudbench.orchestrator.db.direct import DirectPostgres
from cloudbench.orchestrator.db.migrate import upgrade
from cloudbench.orchestrator.db.statements import Beat, BeatKind, Kind

KIND = Kind("local", "box", None, None)


def _seed(url: str, pending: int, failed_by: dict[int, tuple[str, str | None]]) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(
            "INSERT INTO runs (external_id, status, ruby_version, tasks_per_instance_type,"
            " instances_per_instance_type, benchmarks, spec, max_attempts, archive_state,"
            " removed_tasks) VALUES (7, 'running', '3.4.7', 1, 1, '{}', '{}', 3, 'none', 0)"
        )
        db.execute(
            "INSERT INTO tasks (run_id, provider, instance_type, alias, run_number, status,"
            " lease, attempt) SELECT (SELECT id FROM runs WHERE external_id = 7), 'local', 'box',"
            " 'box', g, 'pending', 0, 1"
            " FROM generate_series(1, %s) g",
            (pending,),
        )
        for number, (runner, host) in failed_by.items():  # a retried task remembers who
            db.execute(
                "UPDATE tasks SET runner_id = %s, runner_host = %s, attempt = 2"
                " WHERE run_number = %s",
                (runner, host, number),
            )


class Counting(DirectPostgres):
    statements = 0

    async def all(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        self.statements += 1
        return await super().all(sql, params)


async def _claims(url: str, claimers: list[tuple[str, str | None]]) -> tuple[list[Any], int]:
    db = Counting(url, size=4)
    await db.open()
    try:
        batcher = batch.claim_batcher(db)
        got = await asyncio.gather(*(batcher.submit(KIND, (r, h)) for r, h in claimers))
        return list(got), db.statements
    finally:
        await db.close()


def test_concurrent_claims_share_statements_and_get_distinct_tasks(pg_url: str) -> None:
    upgrade(pg_url)
    _seed(pg_url, 200, {})
    claimers: list[tuple[str, str | None]] = [(f"r{i}", f"h{i % 3}") for i in range(150)]
    got, statements = asyncio.run(_claims(pg_url, claimers))
    assert all(g is not None for g in got)
    ids = [g.task_id for g in got]
    assert len(set(ids)) == 150, "every claimer its own task"
    assert ids == sorted(ids), "oldest first, in arrival order"
    assert statements < 150 / 10, f"{statements} statements for 150 concurrent claims"
    assert statements >= 150 / batch.MAX_BATCH
    assert {g.lease for g in got} == {1} and {g.run_external_id for g in got} == {7}
    dsn = make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn) as db:
        rows = db.execute(
            "SELECT runner_id, runner_host FROM tasks WHERE status = 'claimed' ORDER BY id"
        ).fetchall()
    assert rows == claimers, "the database holds who claimed what"


def test_no_claimer_gets_a_task_its_batch_failed_and_leftovers_are_none(pg_url: str) -> None:
    upgrade(pg_url)
    # Task 1 was failed by r0, task 2 on host h1; tasks 3 and 4 are untouched.
    _seed(pg_url, 4, {1: ("r0", "h0"), 2: ("old", "h1")})
    claimers: list[tuple[str, str | None]] = [("r0", "h9"), ("r1", "h1"), ("r2", None)]
    got, _ = asyncio.run(_claims(pg_url, claimers))
    numbers = [None if g is None else g.run_number for g in got]
    assert numbers == [3, 4, None], numbers  # r2 then takes the one-by-one path (hot.claim)


async def _beats(url: str, beats: list[Beat], kind: BeatKind) -> tuple[list[Any], int]:
    db = Counting(url, size=4)
    await db.open()
    try:
        batcher = batch.beat_batcher(db)
        got = await asyncio.gather(*(batcher.submit(kind, b) for b in beats))
        return list(got), db.statements
    finally:
        await db.close()


def test_heartbeats_share_statements_and_stay_fenced(pg_url: str) -> None:
    upgrade(pg_url)
    _seed(pg_url, 40, {})
    claimers: list[tuple[str, str | None]] = [(f"r{i}", None) for i in range(40)]
    claimed, _ = asyncio.run(_claims(pg_url, claimers))
    fields = {"heartbeat_status": "running", "progress_pct": 50.0}
    kind = BeatKind(frozenset({"progress_pct"}), running=True, lease=True)
    beats: list[Beat] = [(c.task_id, f"r{i}", c.lease, fields) for i, c in enumerate(claimed)]
    first = claimed[0]
    beats += [
        (first.task_id, "r0", first.lease + 1, fields),  # a stale lease
        (claimed[1].task_id, "r0", claimed[1].lease, fields),  # not the holder
        (first.task_id, "r0", first.lease, fields),  # the same task twice in one batch
    ]
    got, statements = asyncio.run(_beats(pg_url, beats, kind))
    assert statements <= 2, statements
    assert got[40] is None and got[41] is None, "fenced as one by one"
    assert (got[0] is None) != (got[42] is None), "a task twice: one row, the other falls back"
    recorded = [g for g in got[1:40]]
    assert all(g is not None for g in recorded)
    assert {(g["status"], g["progress_pct"], g["run_external_id"]) for g in recorded} == {
        ("running", 50.0, 7)
    }
    assert all(g["started_at"] is not None and g["heartbeat_status"] == "running" for g in recorded)
    assert [g["runner_id"] for g in recorded] == [f"r{i}" for i in range(1, 40)]

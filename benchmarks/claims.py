"""Claim throughput: the HTTP API against the raw claim statement, in the same run.

Starts a throwaway Postgres cluster (or uses CLOUDBENCH_TEST_DATABASE_URL), seeds N
pending tasks per measurement, then drains them with 1, 8 and 64 concurrent claimers:
once through `POST /tasks/claim` on a real orchestrator process, once by calling the
claim statement directly (one SQLAlchemy session per claim, as the route does).
Prints claims/s, p50 and p99 latency, and the API/raw-SQL ratio.

    uv run python benchmarks/claims.py [--tasks 2000] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import Cluster

from cloudbench.orchestrator.db import queue
from cloudbench.orchestrator.db.engine import make_engine, make_session_factory

LEVELS = (1, 8, 64)


def seed(admin: httpx.Client, itype: str, n: int) -> None:
    body = {"ruby_version": "3.4.7", "per_instance_type": {"tasks": n}, "aws": [itype]}
    resp = admin.post("/runs", json=body)
    resp.raise_for_status()


def drain(concurrency: int, claim_one: Callable[[int], bool]) -> tuple[float, list[float]]:
    """Run claimers until nothing is left; returns (wall seconds, per-claim latencies)."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]

    def worker(i: int) -> None:
        while True:
            t0 = time.perf_counter()
            got = claim_one(i)
            if not got:
                return
            latencies[i].append(time.perf_counter() - t0)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return time.perf_counter() - start, [x for lat in latencies for x in lat]


def api_claimer(orch: OrchestratorProcess, itype: str, concurrency: int) -> Callable[[int], bool]:
    clients = [orch.client(role="runner") for _ in range(concurrency)]
    body = {"provider": "aws", "instance_type": itype}

    def claim_one(i: int) -> bool:
        resp = clients[i].post("/tasks/claim", json={**body, "runner_id": f"b{i}"})
        resp.raise_for_status()
        return bool(resp.json()["status"] == "assigned")

    return claim_one


def sql_claimer(url: str, itype: str, concurrency: int) -> Callable[[int], bool]:
    factory = make_session_factory(make_engine(url, pool_size=concurrency))

    def claim_one(i: int) -> bool:
        with factory() as session:
            got = queue.claim_task(
                session=session, provider="aws", instance_type=itype, runner_id=f"s{i}"
            )
            session.commit()
            return got is not None

    return claim_one


def report(label: str, n: int, wall: float, lats: list[float]) -> float:
    lats.sort()
    rate = n / wall
    p50 = statistics.median(lats) * 1000
    p99 = lats[min(len(lats) - 1, int(len(lats) * 0.99))] * 1000
    print(f"  {label:<8} {rate:8.0f} claims/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per measurement")
    parser.add_argument("--workers", type=int, default=2, help="orchestrator processes")
    args = parser.parse_args()
    cluster = None
    url = os.environ.get("CLOUDBENCH_TEST_DATABASE_URL")
    if not url:
        cluster = Cluster()
        url = cluster.start()
    state = Path(tempfile.mkdtemp(prefix="cloudbench-bench-"))
    orch = OrchestratorProcess(
        database_url=url, state_dir=state, workers=args.workers, sweep_interval=3600
    ).start()
    try:
        admin = orch.client()
        print(
            f"{args.tasks} tasks per measurement, {args.workers} server process(es), "
            f"{os.cpu_count()} CPUs"
        )
        for level in LEVELS:
            print(f"concurrency {level}:")
            seed(admin, f"api.{level}", args.tasks)
            wall, lats = drain(level, api_claimer(orch, f"api.{level}", level))
            api = report("HTTP API", args.tasks, wall, lats)
            seed(admin, f"sql.{level}", args.tasks)
            wall, lats = drain(level, sql_claimer(url, f"sql.{level}", level))
            raw = report("raw SQL", args.tasks, wall, lats)
            print(f"  ratio API/raw SQL: {api / raw:.2f}")
    finally:
        orch.stop()
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()

"""Chaos soak (issue 13): many short tasks survive killed runners, restarts and a DB drop.

One production-configured Postgres (fsync, synchronous_commit on), one orchestrator
started as users start it (`cloudbench orchestrator serve`), runner processes with the
test suite's fake ruby-bench on the host executor. The same run is done twice in this
script, each on a fresh database:

- fault-free: the baseline wall time;
- chaos: SIGKILL a random runner process every few seconds (a replacement starts at
  once, in the same work directory: the killed one's leftovers are in its way), SIGKILL
  and restart the orchestrator twice, and terminate every database connection once.

Checked at the end of each: every task completed exactly once or failed with a type
after its attempts, none lost, every completed result object is the one its completing
claim uploaded (metadata.json names that runner and lease; a stale runner cannot replace
it), and the archive's manifest lists every task.

    uv run python benchmarks/soak.py                       # 5,000 tasks, 50 slots
    uv run python benchmarks/soak.py --tasks 300 --processes 6 --phases chaos
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import Cluster

from cloudbench.protocol import RETRYABLE_ERRORS

FAKE_SUITE = Path(__file__).resolve().parent.parent / "tests" / "fake_ruby_bench"
TERMINAL = ("completed", "failed")


class _Orchestrator(OrchestratorProcess):
    def wait_up(self, timeout: float = 300) -> None:
        # A machine busy with 50 runner slots can take minutes to import and bind.
        super().wait_up(timeout)


@dataclass
class Options:
    tasks: int = 5000
    types: int = 5
    processes: int = 25
    slots: str = "logical"  # 2 slots per process on this 2-CPU machine
    kill_every: float = 3.0
    restarts: int = 2
    db_drops: int = 1
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 20.0
    max_attempts: int = 3
    timeout: float = 3600.0


@dataclass
class Faults:
    kills: int = 0
    restarts: int = 0
    db_drops: int = 0
    dropped_connections: int = 0


@dataclass
class Outcome:
    name: str
    wall: float
    faults: Faults
    statuses: Counter[str] = field(default_factory=Counter)
    failed_types: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Phase:
    """One run on its own database, orchestrator and runner processes."""

    def __init__(self, name: str, db_url: str, work: Path, opts: Options, chaos: bool) -> None:
        self.name, self.db_url, self.work, self.opts, self.chaos = name, db_url, work, opts, chaos
        self.orch = _Orchestrator(
            db_url,
            work / "orchestrator",
            heartbeat_timeout=opts.heartbeat_timeout,
            sweep_interval=1.0,
            workers=None,
            log_level="warning",
        )
        self.runners: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}
        self.faults = Faults()
        self.run_id = 0
        self.rng = random.Random(13)

    # ------------------------------------------------------------ processes
    def _runner(self, slot: int, itype: str) -> subprocess.Popen[bytes]:
        work = self.work / f"runner-{slot}"
        work.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "CLOUDBENCH_RUNNER_TOKEN": self.orch.runner_token,
            "CLOUDBENCH_HEARTBEAT_INTERVAL": str(self.opts.heartbeat_interval),
            "CLOUDBENCH_UNREACHABLE_GIVE_UP": "300",
            "CLOUDBENCH_WAIT_DEFAULT": "1",
        }
        argv = [
            sys.executable,
            "-m",
            "cloudbench.runner",
            "--orchestrator-url",
            self.orch.url,
            "--provider",
            "local",
            "--instance-type",
            itype,
            "--run-id",
            str(self.run_id),
            "--slots",
            self.opts.slots,
            "--housekeeping-cpus",
            "none",
            "--executor",
            "host",
            "--ruby-bench",
            str(FAKE_SUITE),
            "--work-dir",
            str(work / "work"),
        ]
        with (work / "runner.log").open("ab") as log:
            return subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def _start_runners(self) -> None:
        for slot in range(self.opts.processes):
            itype = f"soak-{slot % self.opts.types}"
            self.runners[slot] = (itype, self._runner(slot, itype))

    def _kill_one(self) -> None:
        live = [s for s, (_, p) in self.runners.items() if p.poll() is None]
        if not live:
            return
        slot = self.rng.choice(live)
        itype, proc = self.runners[slot]
        proc.kill()
        proc.wait()
        self.faults.kills += 1
        self.runners[slot] = (itype, self._runner(slot, itype))

    def _restart_orchestrator(self) -> None:
        self.orch.stop(kill=True)
        time.sleep(3)
        self.orch.start()  # same port, same database
        self.faults.restarts += 1

    def _drop_db_connections(self) -> None:
        dsn = make_url(self.db_url).set(drivername="postgresql")
        with psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True) as db:
            rows = db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        self.faults.db_drops += 1
        self.faults.dropped_connections += len(rows)

    # ------------------------------------------------------------ the run
    def run(self) -> Outcome:
        admin = self.orch.client()
        try:
            self.orch.start()
            self.run_id = self._create(admin)
            started = time.monotonic()
            self._start_runners()
            self._watch(admin)
            wall = time.monotonic() - started
            outcome = Outcome(self.name, wall, self.faults)
            self._verify(admin, outcome)
            return outcome
        finally:
            admin.close()
            for _, proc in self.runners.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self.orch.stop()

    def _create(self, admin: httpx.Client) -> int:
        per_type, extra = divmod(self.opts.tasks, self.opts.types)
        if extra:
            raise SystemExit(f"--tasks must be a multiple of --types ({self.opts.types})")
        body = {
            "ruby_version": "system",
            "local": [f"soak-{i}" for i in range(self.opts.types)],
            "per_instance_type": {"tasks": per_type},
            "max_attempts": self.opts.max_attempts,
            "benchmarks": {
                "names": ["fib"],
                "executables": ["interp"],
                "warmup_iterations": 0,
                "bench_iterations": 1,
            },
        }
        resp = admin.post("/runs", json=body)
        resp.raise_for_status()
        return int(resp.json()["run_id"])

    def _progress(self, admin: httpx.Client) -> dict[str, Any] | None:
        try:
            resp = admin.get(f"/runs/{self.run_id}", timeout=10)
        except httpx.HTTPError:
            return None  # the orchestrator is restarting
        return dict(resp.json()) if resp.status_code == 200 else None

    def _watch(self, admin: httpx.Client) -> None:
        deadline = time.monotonic() + self.opts.timeout
        next_kill = time.monotonic() + self.opts.kill_every
        marks = {
            "restart": [(k + 1) / (self.opts.restarts + 1) for k in range(self.opts.restarts)],
            "drop": [0.5] * self.opts.db_drops,
        }
        while time.monotonic() < deadline:
            run = self._progress(admin)
            if run is not None and run["status"] != "running":
                return
            done = 0.0
            if run is not None:
                counts = run["tasks"]
                done = (counts["completed"] + counts["failed"]) / max(1, counts["total"])
            if self.chaos:
                if time.monotonic() >= next_kill:
                    self._kill_one()
                    next_kill = time.monotonic() + self.opts.kill_every
                if marks["restart"] and done >= marks["restart"][0]:
                    marks["restart"].pop(0)
                    self._restart_orchestrator()
                if marks["drop"] and done >= marks["drop"][0]:
                    marks["drop"].pop(0)
                    self._drop_db_connections()
            self._replace_exited()
            time.sleep(0.5)
        raise SystemExit(f"{self.name}: run {self.run_id} not finished after {self.opts.timeout}s")

    def _replace_exited(self) -> None:
        # A runner that gave up (e.g. unreachable during a restart) is replaced like a
        # killed one; one that found no work left exits 0 and stays gone.
        for slot, (itype, proc) in list(self.runners.items()):
            if proc.poll() not in (None, 0):
                self.runners[slot] = (itype, self._runner(slot, itype))

    # ------------------------------------------------------------ checks
    def _verify(self, admin: httpx.Client, out: Outcome) -> None:
        tasks = admin.get(f"/runs/{self.run_id}/tasks", timeout=120).json()["tasks"]
        out.statuses.update(t["status"] for t in tasks)
        if len(tasks) != self.opts.tasks:
            out.problems.append(f"{len(tasks)} tasks listed, {self.opts.tasks} created")
        for task in tasks:
            out.retried += task["attempt"] > 1
            out.problems += self._check_task(task)
            if task["status"] == "failed":
                out.failed_types[str(task["error_type"])] += 1
        out.problems += self._check_archive(admin, {t["id"] for t in tasks})

    def _check_task(self, task: dict[str, Any]) -> list[str]:
        tid, status, history = task["id"], task["status"], task["attempts"]
        if status not in TERMINAL:
            return [f"task {tid} lost: {status}"]
        completed = [a for a in history if a["outcome"] == "completed"]
        if status == "failed":
            retryable = task["error_type"] in {e.value for e in RETRYABLE_ERRORS}
            if task["error_type"] is None or completed:
                return [f"task {tid} failed without a type or after completing"]
            if retryable and task["attempt"] != task["max_attempts"]:
                return [f"task {tid} failed with attempts left: {task['attempt']}"]
            return []
        if len(completed) != 1 or completed[0]["attempt"] != task["attempt"]:
            return [f"task {tid} completed {len(completed)} times: {history}"]
        return self._check_result_object(task, completed[0])

    def _check_result_object(self, task: dict[str, Any], done: dict[str, Any]) -> list[str]:
        path = self.orch.state_dir / "storage" / task["result_key"]
        try:
            with tarfile.open(path, "r:gz") as tar:
                member = tar.extractfile("metadata.json")
                meta = json.loads(member.read()) if member else {}
        except (OSError, tarfile.TarError, KeyError) as exc:
            return [f"task {task['id']}: result object unreadable: {exc}"]
        if (meta.get("runner_id"), meta.get("lease")) != (done["runner_id"], task["lease"]):
            return [
                f"task {task['id']}: result object is not the completing claim's: "
                f"{meta.get('runner_id')}/{meta.get('lease')} vs "
                f"{done['runner_id']}/{task['lease']}"
            ]
        return []

    def _check_archive(self, admin: httpx.Client, ids: set[int]) -> list[str]:
        deadline = time.monotonic() + 600
        run = admin.get(f"/runs/{self.run_id}").json()
        while run["archive_state"] not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(1)
            run = admin.get(f"/runs/{self.run_id}").json()
        if run["archive_state"] != "ready":
            return [f"archive {run['archive_state']}: {run.get('archive_error')}"]
        with httpx.stream("GET", run["gzip_url"], timeout=300) as resp:
            data = io.BytesIO(resp.read())
        with tarfile.open(fileobj=data, mode="r:gz") as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.loads(member.read()) if member else {"tasks": []}
        listed = {t["task_id"] for t in manifest["tasks"]}
        missing = sorted(ids - listed)
        return [f"archive misses {len(missing)} task(s), e.g. {missing[:5]}"] if missing else []


def _database(cluster_url: str, name: str) -> str:
    url = make_url(cluster_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def soak(
    opts: Options,
    *,
    phases: tuple[str, ...] = ("fault-free", "chaos"),
    work: Path | None = None,
    durable: bool = True,
) -> list[Outcome]:
    """Run the phases on one cluster (durable: as deployed); their outcomes, checks included."""
    work = work or Path(tempfile.mkdtemp(prefix="cloudbench-soak-"))
    cluster = Cluster(durable=durable)
    cluster_url = cluster.start()
    outcomes = []
    try:
        for name in phases:
            chaos = name == "chaos"
            db_url = _database(cluster_url, name.replace("-", "_"))
            outcomes.append(Phase(name, db_url, work / name, opts, chaos).run())
    finally:
        cluster.stop()
    return outcomes


def report(outcomes: list[Outcome], opts: Options) -> None:
    slots = opts.processes * (2 if opts.slots == "logical" else int(opts.slots))
    print(
        f"soak: {opts.tasks} tasks, {opts.types} instance types, {opts.processes} runner "
        f"processes (~{slots} slots), heartbeat {opts.heartbeat_interval:g}s/"
        f"{opts.heartbeat_timeout:g}s, max_attempts {opts.max_attempts}"
    )
    for out in outcomes:
        f = out.faults
        print(
            f"  {out.name:<10} wall {out.wall:7.1f}s  statuses {dict(out.statuses)}  "
            f"failed by type {dict(out.failed_types)}  retried {out.retried}"
        )
        print(
            f"  {'':<10} faults: {f.kills} runner SIGKILLs, {f.restarts} orchestrator "
            f"restarts, {f.db_drops} DB drop(s) ({f.dropped_connections} connections)"
        )
        print(f"  {'':<10} checks: {'all passed' if out.ok else '; '.join(out.problems[:10])}")
    walls = {o.name: o.wall for o in outcomes}
    if len(walls) == 2:
        print(f"  chaos / fault-free wall time: {walls['chaos'] / walls['fault-free']:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Options()
    for name, value in vars(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--phases", default="fault-free,chaos", help="comma-separated, in order")
    args = vars(parser.parse_args())
    phases = tuple(p for p in args.pop("phases").split(",") if p)
    if set(phases) - {"fault-free", "chaos"}:
        raise SystemExit("--phases: fault-free and/or chaos")
    opts = Options(**args)
    outcomes = soak(opts, phases=phases)
    report(outcomes, opts)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())

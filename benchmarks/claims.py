"""Queue throughput as deployed: claims and heartbeats through the API vs. pgbench.

One run, one production-configured Postgres (a throwaway cluster started WITHOUT
fsync=off: fsync, synchronous_commit and full_page_writes at Debian's defaults on),
one orchestrator started as users start it (`cloudbench orchestrator serve`, its own
defaults: workers, pool, sweeper every 30 s, heartbeat timeout 120 s).

- claims: wrk (C, Lua script) POSTs /tasks/claim at 1, 8, 64, 256 connections; the
  ceiling is pgbench running the claim statement the orchestrator itself emits (captured
  from `db/hot.claim`, not retyped) on the same table at the same concurrency.
- heartbeats: wrk POSTs /tasks/{id}/heartbeat over 4,096 claimed tasks.
- steady state: claims again after all of the above (hundreds of thousands of rows,
  tens of thousands of claims and heartbeats, dead tuples, the sweeper failing the
  claims that never heartbeat), API and pgbench again.

The load generators' own CPU is printed (share of one core) to show they are not the
bottleneck. Tasks are seeded with one INSERT … generate_series and a CHECKPOINT per
measurement (set-up, not under test), enough that no measurement runs the queue dry (a dry
queue is reported). Each line also shows the VM's steal time since the line before it.

    uv run python benchmarks/claims.py                 # everything, about 3 minutes
    uv run python benchmarks/claims.py --part heartbeats --seconds 5
    uv run python benchmarks/claims.py --workers 2 --unsafe-fsync-off   # old-benchmark shapes
    uv run python benchmarks/claims.py --no-direct      # the FastAPI routes only (before)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import loadgen
from tests.orchestrator_proc import OrchestratorProcess
from tests.pg import Cluster

from cloudbench.orchestrator.db import hot

LEVELS = (1, 8, 64, 256)
TYPES_PER_MEASUREMENT = 4
HEARTBEAT_TASKS = 4096
SENTINEL = "__instance_type__"


class Bench:
    def __init__(self, url: str, orch: OrchestratorProcess, seconds: float, pg_pid: int) -> None:
        self.url, self.orch, self.seconds = url, orch, seconds
        u = make_url(url)
        self.dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
        self.pg_args = ["-h", str(u.host), "-p", str(u.port), "-U", str(u.username)]
        self.pg_args.append(str(u.database))
        self.db = psycopg.connect(self.dsn, autocommit=True)
        self.admin = orch.client()
        resp = self.admin.post(
            "/runs",
            json={
                "ruby_version": "3.4.7",
                "per_instance_type": {"tasks": 1},
                "aws": ["bench.seed"],
            },
        )
        resp.raise_for_status()
        ext = resp.json()["run_id"]
        row = self.db.execute("SELECT id FROM runs WHERE external_id = %s", (ext,)).fetchone()
        assert row is not None
        self.run_pk = int(row[0])
        self.serial = 0
        self.claim_sql = captured_claim_sql(url)
        self.pg_pid = pg_pid
        self.last_pg_share = 0.0
        self.last_workers = ""

    def seed(self, prefix: str, total: int) -> list[str]:
        self.serial += 1
        types = [f"{prefix}.{self.serial}.{i}" for i in range(TYPES_PER_MEASUREMENT)]
        self.db.execute(
            "INSERT INTO tasks (run_id, provider, instance_type, alias, run_number, status, lease)"
            " SELECT %s, 'aws', t, t, g, 'pending', 0"
            " FROM unnest(%s::text[]) t, generate_series(1, %s) g",
            (self.run_pk, types, total // TYPES_PER_MEASUREMENT + 1),
        )
        # Seeding is set-up: its WAL must not trigger a checkpoint inside whichever
        # measurement comes next (the API's ran first and paid for it). Dead tuples,
        # bloat and everything claims and heartbeats left behind stay.
        self.db.execute("CHECKPOINT")
        return types

    def dry(self, types: list[str]) -> bool:
        row = self.db.execute(
            "SELECT count(*) FROM tasks WHERE status = 'pending' AND instance_type = ANY(%s)",
            (types,),
        ).fetchone()
        return row is not None and min(row) == 0

    def orch_cpu(self) -> float:
        assert self.orch.proc is not None
        return _tree_cpu(self.orch.proc.pid)

    def pg_cpu(self) -> float:
        """The whole cluster's CPU (postmaster and every backend), to show where time goes."""
        return _tree_cpu(self.pg_pid)

    def api(self, script: str, clients: int) -> tuple[loadgen.Result, float]:
        assert self.orch.proc is not None
        pid = self.orch.proc.pid
        workers = {p.pid: sum(p.cpu_times()[:2]) for p in psutil.Process(pid).children()}
        before, pg_before = self.orch_cpu(), self.pg_cpu()
        spy = self.profile(script, clients)
        r = loadgen.wrk(self.orch.url, self.orch.runner_token, script, clients, self.seconds)
        if spy is not None:
            spy.wait()
        self.last_pg_share = (self.pg_cpu() - pg_before) / r.seconds
        self.last_workers = worker_shares(pid, r.seconds, workers)
        return r, (self.orch_cpu() - before) / r.seconds

    def profile(self, script: str, clients: int) -> subprocess.Popen[bytes] | None:
        """With CLOUDBENCH_PROFILE=DIR, py-spy records the server (collapsed stacks)."""
        out = os.environ.get("CLOUDBENCH_PROFILE")
        if not out or self.orch.proc is None:
            return None
        kind = "heartbeat" if "/heartbeat" in script else "claim"
        dest = Path(out) / f"{kind}-{clients}.txt"
        dest.parent.mkdir(parents=True, exist_ok=True)
        argv = ["py-spy", "record", "--subprocesses", "--format", "raw", "--nonblocking"]
        argv += ["-d", str(max(1, int(self.seconds) - 1)), "-o", str(dest)]
        pid = str(self.orch.proc.pid)
        return subprocess.Popen([*argv, "-p", pid], stdout=subprocess.DEVNULL)

    def api_claims(self, clients: int, label: str) -> loadgen.Result:
        types = self.seed("api", _needed(clients, self.seconds))
        r, orch_share = self.api(loadgen.claim_script(types), clients)
        dry = " QUEUE RAN DRY" if self.dry(types) else ""
        cpu = f"orchestrator CPU {orch_share:4.2f} cores{per_request(r, orch_share)}"
        cpu += f" (workers {self.last_workers})"
        line(label, r, f"{cpu}  postgres {self.last_pg_share:4.2f} cores{dry}")
        return r

    def pg_claims(self, clients: int, label: str) -> loadgen.Result:
        types = self.seed("pg", 4 * _needed(max(clients, 8), self.seconds))
        prefix = types[0][:-1]
        sql = (
            "\\set t random(0, 3)\n"
            + self.claim_sql.replace(f"'{SENTINEL}'", f"('{prefix}' || :t)")
            + ";\n"
        )
        pg_before = self.pg_cpu()
        r = loadgen.pgbench(self.pg_args, sql, clients, self.seconds)
        pg_share = (self.pg_cpu() - pg_before) / r.seconds
        row = self.db.execute(
            "SELECT count(*) FROM tasks WHERE status = 'claimed' AND instance_type = ANY(%s)",
            (types,),
        ).fetchone()
        assert row is not None
        # Count claims made, not transactions: an empty claim is cheaper and must not count.
        r.requests = min(r.requests, int(row[0]))
        dry = " QUEUE RAN DRY" if self.dry(types) else ""
        line(label, r, f"postgres {pg_share:4.2f} cores{dry}")
        return r

    def claimed_for_heartbeats(self) -> list[tuple[int, str, int]]:
        (types,) = [self.seed("hb", HEARTBEAT_TASKS)[:1]]
        rows = self.db.execute(
            "UPDATE tasks SET status = 'claimed', runner_id = 'hb-' || id, lease = lease + 1,"
            " claimed_at = statement_timestamp(), heartbeat_at = statement_timestamp(),"
            " heartbeat_status = 'boot' WHERE instance_type = %s AND status = 'pending'"
            " RETURNING id, runner_id, lease",
            (types[0],),
        ).fetchall()
        return [(int(i), str(r), int(le)) for i, r, le in rows]


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants, ended ones too (a postmaster reaps
    each pgbench connection's backend: its time moves to the postmaster's children_*)."""
    root = psutil.Process(pid)
    t = root.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for p in root.children(recursive=True):
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue  # ended between listing and reading; counted once reaped
        total += t.user + t.system
    return total


def worker_shares(pid: int, seconds: float, before: dict[int, float]) -> str:
    """Each serve worker's share of a core: one busy worker beside an idle one is a limit."""
    now = {p.pid: sum(p.cpu_times()[:2]) for p in psutil.Process(pid).children()}
    return "/".join(f"{(now[k] - before.get(k, 0.0)) / seconds:.2f}" for k in sorted(now))


def _needed(clients: int, seconds: float) -> int:
    # Generous: a dry queue answers "done" cheaply and would flatter the figure.
    return int((1500 if clients == 1 else 8000) * seconds) + 1000


def captured_claim_sql(url: str) -> str:
    """The claim statement exactly as the orchestrator sends it (db/statements.py's
    Postgres claim, for one claimer: what db/hot.claim runs)."""
    engine = create_engine(url)
    seen: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def grab(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE TASKS"):
            seen.append((statement, params))

    with engine.connect() as conn:
        hot.claim(conn=conn, provider="aws", instance_type=SENTINEL, runner_id="pgbench")
        conn.rollback()
    engine.dispose()
    (statement, params), *_ = seen
    for key, value in params.items():
        statement = statement.replace(f"%({key})s", _literal(value))
    return " ".join(statement.split())


def _literal(value: Any) -> str:
    if isinstance(value, list):
        return f"ARRAY[{', '.join(_literal(v) for v in value)}]"
    return f"'{value}'" if isinstance(value, str) else "NULL" if value is None else str(value)


class Steal:
    """The share of CPU time a VM's host took (/proc/stat steal) since the last call."""

    def __init__(self) -> None:
        self.last = self._ticks()

    @staticmethod
    def _ticks() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return fields[7], sum(fields[:8])

    def pct(self) -> float:
        (steal, total), (steal0, total0) = self._ticks(), self.last
        self.last = (steal, total)
        return 100 * (steal - steal0) / max(1, total - total0)


STEAL = Steal()


def line(label: str, r: loadgen.Result, extra: str = "") -> None:
    bad = f"  BAD {r.bad}" if r.bad else ""
    share = STEAL.pct()
    print(
        f"  {label:<26} {r.rate:7.0f} /s  p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms"
        f"  loadgen CPU {r.cpu_share:4.2f} cores  steal {share:3.0f}%  {extra}{bad}",
        flush=True,
    )


def per_request(r: loadgen.Result, cores: float) -> str:
    """Orchestrator CPU per request: less sensitive than rates to other load on the box."""
    return f" = {1000 * cores / r.rate:5.2f} ms/req" if r.rate else ""


def ratio(api: loadgen.Result, pg: loadgen.Result) -> None:
    print(f"  {'ratio API / pgbench':<26} {api.rate / pg.rate:7.2f}", flush=True)


def settings(db: psycopg.Connection[Any]) -> str:
    names = ("fsync", "synchronous_commit", "full_page_writes", "max_connections")
    vals = [f"{n}={db.execute(f'SHOW {n}').fetchone()[0]}" for n in names]  # type: ignore[index]
    return ", ".join(vals)


def run(bench: Bench, parts: set[str], levels: tuple[int, ...]) -> None:
    if "claims" in parts:
        print("claims, fresh queue:")
        for c in levels:
            api = bench.api_claims(c, f"API     {c:>3} clients")
            pg = bench.pg_claims(c, f"pgbench {c:>3} clients")
            ratio(api, pg)
    if "heartbeats" in parts:
        print(f"heartbeats over {HEARTBEAT_TASKS} claimed tasks (target >= 1000/s, p99 < 100 ms):")
        script = loadgen.heartbeat_script(bench.claimed_for_heartbeats())
        for c in levels:
            r, share = bench.api(script, c)
            cpu = f"orchestrator CPU {share:4.2f} cores" + per_request(r, share)
            cpu += f" (workers {bench.last_workers})  postgres {bench.last_pg_share:4.2f} cores"
            line(f"API     {c:>3} clients", r, cpu)
    if "claims" in parts:
        row = bench.db.execute(
            "SELECT count(*), count(*) FILTER (WHERE status <> 'pending') FROM tasks"
        ).fetchone()
        stats = bench.db.execute(
            "SELECT n_dead_tup, n_tup_upd FROM pg_stat_user_tables WHERE relname = 'tasks'"
        ).fetchone()
        print(f"claims, steady state (tasks {row}, dead tuples/updates {stats}):")
        seq = bench.api_claims(1, "API       1 client (seq)")
        api = bench.api_claims(64, "API      64 clients")
        pg = bench.pg_claims(64, "pgbench  64 clients")
        ratio(api, pg)
        print(f"  sequential claim p50 {seq.p50_ms:.1f} ms (target < 3 ms)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    parser.add_argument("--part", default="claims,heartbeats", help="claims,heartbeats")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--workers", type=int, default=None, help="default: serve's own")
    parser.add_argument(
        "--unsafe-fsync-off", action="store_true", help="diagnostic only: the old setup"
    )
    parser.add_argument(
        "--no-direct", action="store_true", help="every request through FastAPI (api/fast.py off)"
    )
    args = parser.parse_args(argv)
    cluster = Cluster(durable=not args.unsafe_fsync_off)
    url = cluster.start()
    state = Path(tempfile.mkdtemp(prefix="cloudbench-bench-"))
    orch = OrchestratorProcess(
        database_url=url,
        state_dir=state,
        workers=args.workers,
        heartbeat_timeout=None,
        sweep_interval=None,
        log_level=None,
        extra_env={"CLOUDBENCH_DIRECT_HOT_PATH": "false"} if args.no_direct else {},
    )
    try:
        orch.start(timeout=600)  # a loaded machine can take minutes to start workers
        bench = Bench(url, orch, args.seconds, cluster.postmaster_pid())
        workers = args.workers or "serve's default"
        workers = f"{workers}{', direct hot path OFF' if args.no_direct else ''}"
        print(
            f"postgres: {settings(bench.db)}; orchestrator workers: {workers}; "
            f"{os.cpu_count()} CPUs; {args.seconds:g} s per measurement",
            flush=True,
        )
        start = time.monotonic()
        run(bench, set(args.part.split(",")), tuple(int(x) for x in args.levels.split(",")))
        print(f"total {time.monotonic() - start:.0f} s")
    finally:
        orch.stop()
        cluster.stop()


if __name__ == "__main__":
    main()

"""The embedded default: claims and heartbeats on SQLite (no CLOUDBENCH_DATABASE_URL).

The orchestrator is started as `cloudbench run` users get it: `cloudbench orchestrator
serve` with its defaults and no database URL, so SQLite in the state directory. Tasks are
seeded through POST /runs; heartbeat tasks are claimed through the API first. No
ceiling here (pgbench is Postgres-only): compare runs of this script before and after
a change, in the same session.

    uv run python benchmarks/sqlite_queue.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import loadgen
from benchmarks.claims import line
from tests.orchestrator_proc import OrchestratorProcess

LEVELS = (1, 8, 64)
TYPES = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=None, help="default: serve's own")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="cloudbench-bench-sqlite-"))
    orch = OrchestratorProcess(
        database_url="",  # unset: the default, SQLite in state_dir
        state_dir=state,
        workers=args.workers,
        heartbeat_timeout=None,
        sweep_interval=None,
        log_level=None,
    )
    try:
        orch.start(timeout=600)  # a loaded machine can take minutes to start
        admin, runner = orch.client(), orch.client(role="runner")
        print(f"SQLite in {state}; workers: {args.workers or 'serve default'}")
        for level in LEVELS:
            types = [f"sq{level}.{i}" for i in range(TYPES)]
            # Two runs of 20,000 (MAX_TASKS_PER_RUN): claims take from any running run.
            body = {"ruby_version": "3.4.7", "per_instance_type": {"tasks": 5_000}}
            for _ in range(2):
                admin.post("/runs", json={**body, "aws": types}, timeout=120).raise_for_status()
            r = loadgen.wrk(
                orch.url, orch.runner_token, loadgen.claim_script(types), level, args.seconds
            )
            line(f"claims     {level:>3} clients", r)
        hb_type = "sq.hb"
        body = {"ruby_version": "3.4.7", "per_instance_type": {"tasks": 1024}, "aws": [hb_type]}
        admin.post("/runs", json=body, timeout=120).raise_for_status()
        tasks = []
        for i in range(1024):
            claim = {"provider": "aws", "instance_type": hb_type, "runner_id": f"hb{i}"}
            task = runner.post("/tasks/claim", json=claim).json()["task"]
            tasks.append((task["id"], f"hb{i}", task["lease"]))
        script = loadgen.heartbeat_script(tasks)
        for level in LEVELS:
            r = loadgen.wrk(orch.url, orch.runner_token, script, level, args.seconds)
            line(f"heartbeats {level:>3} clients", r)
    finally:
        orch.stop()


if __name__ == "__main__":
    main()

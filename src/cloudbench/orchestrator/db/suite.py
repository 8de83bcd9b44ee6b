"""The ruby-bench suite shipped with a run: its storage key and recorded sha256."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cloudbench.orchestrator.db.runs import require_run
from cloudbench.orchestrator.errors import NotFound


def suite_key(run_id: int) -> str:
    return f"suites/{run_id}/ruby-bench.tar.gz"


def record_suite(*, session: Session, external_id: int, sha256: str) -> None:
    """The stored suite's sha256 (a second upload replaces the first)."""
    run = require_run(session=session, external_id=external_id)
    run.ruby_bench_sha256 = sha256
    session.flush()


def suite_sha256(*, session: Session, external_id: int) -> str:
    run = require_run(session=session, external_id=external_id)
    if run.ruby_bench_sha256 is None:
        raise NotFound(f"run {external_id} has no shipped ruby-bench suite")
    return run.ruby_bench_sha256

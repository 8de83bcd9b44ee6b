"""The chaos soak, scaled down for CI (issue 13): benchmarks/soak.py's chaos phase.

Forty tasks (benchmarks/soak.py runs thousands) on a real Postgres and orchestrator,
runner processes with the fake ruby-bench; runner processes SIGKILLed every few seconds
(and replaced), the orchestrator SIGKILLed and restarted once, every database connection
terminated once. The soak's own checks must all pass: every task completed exactly once
(its result object the completing claim's) or failed with a type after its attempts, none
lost, the archive lists them all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.soak import Options, soak

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ruby")]


def test_scaled_down_chaos_soak(tmp_path: Path) -> None:
    opts = Options(
        tasks=40,
        types=2,
        processes=4,
        kill_every=5.0,
        restarts=1,
        db_drops=1,
        heartbeat_interval=1.0,
        heartbeat_timeout=8.0,
        max_attempts=3,
        timeout=300.0,
    )
    [chaos] = soak(opts, phases=("chaos",), work=tmp_path, durable=False)
    assert chaos.ok, chaos.problems
    assert sum(chaos.statuses.values()) == 40
    assert chaos.faults.kills >= 2 and chaos.faults.restarts == 1
    assert chaos.faults.db_drops == 1 and chaos.faults.dropped_connections > 0
    # Failures only as the soak allows them (a type, attempts used up); most complete.
    assert chaos.statuses["completed"] >= 36, chaos.statuses

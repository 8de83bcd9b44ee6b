"""boot-times.jsonl (issue 27): what the master keeps of each VM's boot stages at the end
of a run, and the set-up the next cost plan reads back from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloudbench.master.boottimes import measured_setup, record_boot_times
from cloudbench.protocol import HeartbeatStatus, MachineOut

T0 = datetime(2026, 12, 7, 10, tzinfo=UTC)


def _machine(instance_id: str, provider: str = "aws", **offsets: float) -> MachineOut:
    return MachineOut(
        instance_id=instance_id,
        provider=provider,
        instance_type="c7g.large",
        alias="g3",
        stage=HeartbeatStatus.finished,
        stage_since=T0,
        first_seen_at=T0,
        last_seen_at=T0,
        stages={k: T0 + timedelta(seconds=s) for k, s in offsets.items()},
    )


def test_set_up_from_cloud_start_else_user_data_start(tmp_path: Path) -> None:
    machines = [
        _machine("i-1", instance_start=0, user_data_start=20, first_benchmark=140),
        _machine("i-2", user_data_start=0, first_benchmark=100),  # no cloud time known
        _machine("i-3", instance_start=0, user_data_start=15),  # never benchmarked
        _machine("i-4", "local", user_data_start=0, first_benchmark=5),  # not billed
    ]
    assert record_boot_times(tmp_path, 7, machines) == 2
    assert record_boot_times(tmp_path, 7, machines[:1]) == 1  # a resumed run: no double
    setup = measured_setup(tmp_path)[("aws", "c7g.large")]
    assert (setup.seconds, setup.vms) == (120.0, 2)  # median of 140 and 100
    assert measured_setup(tmp_path / "nowhere") == {}

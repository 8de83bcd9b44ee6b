"""summary.json format 4 (issue 27): per type, time to first benchmark over its machines
(metadata format 6's boot block) and the capacity its machines read from IMDS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloudbench.report import build_report
from tests.report.synth import SynthTask, write_run


def _meta(machine: str, seconds: float | None, lifecycle: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "format_version": 6,
        "instance": {"provider": "aws", "instance_id": machine, "lifecycle": lifecycle},
    }
    if seconds is not None:
        meta["boot"] = {
            "stages": {"user_data_start": "2026-12-07T10:00:00.000+00:00"},
            "time_to_first_benchmark_s": seconds,
        }
    return meta


def _task(i: int, alias: str, machine: str, seconds: float | None, life: str | None) -> SynthTask:
    bench = {"interp": {"fib": [1.0 + i / 100] * 3}}
    return SynthTask(i, alias, machine, bench, metadata=_meta(machine, seconds, life))


def test_time_to_first_benchmark_per_machine_and_capacity(tmp_path: Path) -> None:
    tasks = [
        # Two tasks of one machine count once (each carries the machine's figure).
        _task(1, "fast", "i-a", 95.0, "spot"),
        _task(2, "fast", "i-a", 95.0, "spot"),
        _task(3, "fast", "i-b", 150.5, "spot"),
        _task(4, "fast", "i-c", 120.0, "spot"),
        _task(5, "slow", "i-d", 600.0, "normal"),  # EC2 says "normal" for on-demand
        _task(6, "slow", "i-e", None, "spot"),  # a format-5 style task: not recorded
        _task(7, "old", "i-f", None, None),
        _task(8, "old", "i-g", None, None),
    ]
    summary = build_report([write_run(tmp_path, 1, tasks)], offline=True).summary
    assert summary["format_version"] == 4
    by_alias = {t["alias"]: t for t in summary["instance_types"]}
    assert by_alias["fast"]["time_to_first_benchmark_s"] == {
        "median": 120.0,
        "min": 95.0,
        "max": 150.5,
        "machines": 3,
    }
    assert by_alias["fast"]["capacity"] == "spot"
    assert by_alias["slow"]["time_to_first_benchmark_s"] == {
        "median": 600.0,
        "min": 600.0,
        "max": 600.0,
        "machines": 1,
    }
    assert by_alias["slow"]["capacity"] == "mixed"
    assert by_alias["old"]["time_to_first_benchmark_s"] is None
    assert by_alias["old"]["capacity"] is None


def test_a_spot_type_is_priced_as_its_ledger_says(tmp_path: Path) -> None:
    tasks = [_task(1, "spotty", "i-a", 90.0, "spot"), _task(2, "plain", "i-b", 80.0, "normal")]
    run = write_run(tmp_path, 1, tasks)
    entry = {
        "provider": "aws",
        "vms": 1,
        "launched_at": "2026-12-07T10:00:00Z",
        "terminated_at": "2026-12-07T11:00:00Z",
        "instance_hours": 1.0,
    }
    ledger = {
        "run_id": 1,
        "total_usd": 0.0301,
        "unpriced": ["aws/plain"],
        "entries": [
            {
                **entry,
                "instance_type": "spotty",
                "alias": "spotty",
                "usd_per_hour": 0.0301,
                "usd": 0.0301,
                "capacity": "spot",
                "price_source": "aws-spot-price-history",
                "price_date": "2026-12-07T09:40:07+00:00",
            },
            {
                **entry,
                "instance_type": "plain",
                "alias": "plain",
                "usd_per_hour": None,
                "usd": None,
            },  # an older ledger's entry: on-demand, no source
        ],
    }
    (run / "cost-ledger.json").write_text(json.dumps(ledger))
    summary = build_report([run], offline=True).summary
    by_alias = {t["alias"]: t for t in summary["instance_types"]}
    spot = by_alias["spotty"]
    assert (spot["usd_per_hour"], spot["price_source"]) == (0.0301, "aws-spot-price-history")
    assert spot["price_date"] == "2026-12-07T09:40:07+00:00" and spot["capacity"] == "spot"
    assert by_alias["plain"]["usd_per_hour"] is None  # offline, no price: never guessed

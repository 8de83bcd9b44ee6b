"""ASLR/YJIT verification from ruby-bench's own output.json, and metadata format versions."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cloudbench.protocol import METADATA_VERSION, AslrState, BenchmarkSettings, Metadata
from cloudbench.runner.output import Timeline
from cloudbench.runner.verify import aslr_disabled_in, verify

RUBY = "/usr/bin/ruby3.1"


def _real(fixtures_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((fixtures_dir / "output_001.json").read_text())
    return data


def test_real_output_verifies_aslr_and_both_executables(fixtures_dir: Path) -> None:
    v = verify(_real(fixtures_dir), ["interp", "yjit"], RUBY)
    assert v.aslr is AslrState.disabled and v.aslr_disabled
    assert v.executables_verified and not v.mismatches
    assert v.descriptions["yjit"] == [
        "ruby 3.1.2p20 (2022-04-12 revision 4491bb740a) +YJIT [x86_64-linux-gnu]"
    ]
    assert "+YJIT" not in v.descriptions["interp"][0]


def test_yjit_without_yjit_is_a_mismatch(fixtures_dir: Path) -> None:
    data = _real(fixtures_dir)
    for result in data["raw_data"]["yjit"].values():  # what a Ruby built without YJIT reports
        result["RUBY_DESCRIPTION"] = result["RUBY_DESCRIPTION"].replace(" +YJIT", "")
    v = verify(data, ["interp", "yjit"], RUBY)
    assert not v.executables_verified
    (message,) = v.mismatches
    assert "'yjit'" in message and RUBY in message and "without +YJIT" in message
    assert "ruby 3.1.2p20" in message


def test_interp_with_yjit_is_a_mismatch(fixtures_dir: Path) -> None:
    data = _real(fixtures_dir)
    data["raw_data"]["interp"] = copy.deepcopy(data["raw_data"]["yjit"])
    (message,) = verify(data, ["interp"], RUBY).mismatches
    assert "'interp'" in message and "with +YJIT" in message


def test_aslr_enabled_when_setarch_was_dropped(fixtures_dir: Path) -> None:
    data = _real(fixtures_dir)
    first = next(iter(data["raw_data"]["interp"].values()))
    first["command_line"] = first["command_line"].replace("setarch x86_64 -R ", "")
    assert verify(data, ["interp", "yjit"], RUBY).aslr is AslrState.enabled
    empty: dict[str, Any] = {"metadata": {}, "raw_data": {"interp": {}}}
    v = verify(empty, ["interp"], RUBY)
    assert v.aslr is AslrState.unknown and not v.executables_verified  # nothing to verify
    assert aslr_disabled_in("setarch aarch64 -R ruby x.rb")
    assert not aslr_disabled_in("setarch x86_64 ruby x.rb")
    assert not aslr_disabled_in("taskset -c 0 setarch x86_64 -R ruby")


def test_timeline_from_real_progress_lines(fixtures_dir: Path) -> None:
    timeline = Timeline(["interp", "yjit"])
    for i, line in enumerate((fixtures_dir / "output.txt").read_text().splitlines()):
        timeline.feed(line, f"t{i}")
    entries = timeline.close("end")
    assert len(entries) == 12
    assert entries[0]["executable"] == "interp" and entries[6]["executable"] == "yjit"
    assert entries[0]["finished_at"] == entries[1]["started_at"]
    assert entries[-1]["finished_at"] == "end"


FORMAT_1 = {  # the layout every result before format_version existed carries
    "task_id": 7,
    "run_id": 3,
    "provider": "local",
    "instance_type": "local",
    "alias": "a",
    "run_number": 1,
    "runner_id": "box-0-abcd",
    "lease": 1,
    "ruby_version": "3.1",
    "benchmarks": {"names": ["fib"]},
    "ruby_bench_commit": None,
    "executor": "host",
    "cpuset": "0",
    "cloudbench_version": "0.1.0",
    "hostname": "box",
    "cpu_model": "Intel(R) Xeon(R) Processor",
    "logical_cores": 2,
    "physical_cores": 2,
    "kernel": "6.1.0",
    "arch": "x86_64",
    "started_at": "2026-11-27T10:00:00+00:00",
}


def test_format_1_metadata_still_reads() -> None:
    meta = Metadata.model_validate(FORMAT_1)
    assert meta.format_version == 1 and meta.checks is None and meta.aslr is None
    assert meta.cpu_model == "Intel(R) Xeon(R) Processor"  # a declared field since main


def test_format_2_metadata_and_newer_refused() -> None:
    checks = {
        "aslr_disabled": True,
        "executables_verified": True,
        "siblings_idle": True,
        "env_clean": True,
        "steal_pct": 0.0,
    }
    meta = Metadata.model_validate(
        {**FORMAT_1, "format_version": 2, "aslr": "disabled", "checks": checks}
    )
    assert meta.checks is not None and meta.checks.aslr_disabled and meta.aslr == "disabled"
    # Format 2 predates the engine read-back and the categories: they read as unknown.
    assert meta.checks.engine_off_benchmark_cpus is None and meta.benchmark_categories == {}
    with pytest.raises(ValidationError, match="upgrade cloudbench"):
        Metadata.model_validate({**FORMAT_1, "format_version": 99})


def test_format_3_metadata_reads_engine_and_categories() -> None:
    checks = {
        "aslr_disabled": True,
        "executables_verified": True,
        "siblings_idle": True,
        "env_clean": True,
        "steal_pct": 0.0,
        "engine_off_benchmark_cpus": False,
    }
    meta = Metadata.model_validate(
        {
            **FORMAT_1,
            "format_version": 3,
            "aslr": "disabled",
            "checks": checks,
            "executor": "docker",
            "benchmark_categories": {"fib": "micro"},
        }
    )
    assert meta.checks is not None and meta.checks.engine_off_benchmark_cpus is False
    assert meta.benchmark_categories == {"fib": "micro"}
    assert meta.checks.own_core is None  # format 3 did not read the CPUs from the machine
    with pytest.raises(ValidationError, match="upgrade cloudbench"):
        Metadata.model_validate({**FORMAT_1, "format_version": METADATA_VERSION + 1})


def test_format_4_metadata_reads_own_core_and_order() -> None:
    checks = {
        "aslr_disabled": True,
        "executables_verified": True,
        "siblings_idle": False,
        "env_clean": True,
        "steal_pct": 0.0,
        "engine_off_benchmark_cpus": None,
        "own_core": False,
    }
    order = {"interleaved": True, "seed": 7, "shuffled": True, "ran": [["yjit", "fib"]]}
    meta = Metadata.model_validate(
        {
            **FORMAT_1,
            "format_version": 4,
            "aslr": "disabled",
            "checks": checks,
            "benchmark_order": order,
        }
    )
    assert meta.checks is not None and meta.checks.own_core is False
    assert meta.model_extra is not None and meta.model_extra["benchmark_order"]["seed"] == 7


def test_benchmarks_env_allowlist() -> None:
    ok = BenchmarkSettings(env={"RUBY_GC_HEAP_INIT_SLOTS": "600000", "MALLOC_ARENA_MAX": "2"})
    assert ok.env["MALLOC_ARENA_MAX"] == "2"
    for key in ("RUBY_YJIT_ENABLE", "RUBYOPT", "LD_PRELOAD", "WARMUP_ITRS"):
        with pytest.raises(ValidationError, match=f"benchmarks.env: '{key}' is not allowed"):
            BenchmarkSettings(env={key: "1"})

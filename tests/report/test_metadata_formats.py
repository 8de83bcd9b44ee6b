"""Metadata formats 1 to 3 read with provenance filled; trust shown; merges refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from cloudbench.report import build_report
from tests.report.synth import SynthTask, write_run

CHECKS = {
    "aslr_disabled": True,
    "executables_verified": True,
    "siblings_idle": True,
    "env_clean": True,
}


def _layout(version: int, i: int, content_id: str = "rb-content-1") -> dict[str, Any]:
    """The format-2/3 layout as runner/metadata.py writes it (no top-level image/region)."""
    meta: dict[str, Any] = {
        "format_version": version,
        "hostname": "shared-host",
        "instance_id": None,
        "cpu_model": None,
        "kernel": None,
        "arch": None,
        "executor": "docker",
        "cpuset": str(i),
        "checks": {**CHECKS, "steal_pct": 0.1 * i},
        "instance": {"provider": "aws", "instance_id": f"i-{i:04d}", "region": "eu-west-1"},
        "cpu": {"model_name": "Neoverse-V2", "arch": "aarch64", "slot_mode": "physical"},
        "slot": {
            "index": 0,
            "cpuset": str(i),
            "slots_sharing_cores": [],
            "siblings_outside_runner": [],
            "concurrent": [],
        },
        "machine": {"kernel_release": "6.8.0-aws"},
        "ruby": {
            "ruby_description": "ruby 3.4.7 (2025-10-08 revision 7a5688e2a2) +PRISM",
            "image_id": "sha256:img",
            "image_tag": "cloudbench-ruby:3.4.7-abc",
            "base_image_digest": "sha256:base",
            "ruby_bench_commit": "09b76c8b0f94",
            "ruby_bench_content_id": content_id,
        },
        "noise": {"steal_pct": 0.1 * i, "cpu_pressure_some_pct": 1.5 * i},
    }
    if version >= 3:
        meta["checks"]["engine_off_benchmark_cpus"] = True
        meta["benchmark_categories"] = {"fib": "headline"}
    return meta


def _run(root: Path, run_id: int, version: int, **kw: Any) -> Path:
    tasks = [
        SynthTask(
            i,
            f"v{version}",
            "",
            {"interp": {"fib": [1.0 + i / 100] * 3}},
            metadata={} if version == 1 else _layout(version, i, **kw),
        )
        for i in (1, 2, 3)
    ]
    for t in tasks:
        t.machine = f"old-host-{t.task_id}" if version == 1 else "shared-host"
    return write_run(root, run_id, tasks)


def test_formats_1_to_3_fill_provenance(tmp_path: Path) -> None:
    for version in (2, 3):
        summary = build_report([_run(tmp_path, version, version)], offline=True).summary
        p = summary["provenance"][0]
        assert p["ruby_bench_content_id"] == ["rb-content-1"]
        assert p["slot_mode"] == ["physical"] and p["cpu_model"] == ["Neoverse-V2"]
        assert p["image_id"] == ["sha256:img"] and p["image_digest"] == ["sha256:base"]
        assert p["kernel"] == ["6.8.0-aws"] and p["region"] == ["eu-west-1"]
        assert p["metadata_format"] == [version]
        # The machine is the instance id, not the (shared) hostname.
        assert p["machines"] == ["i-0001", "i-0002", "i-0003"]
        assert summary["instance_types"][0]["region"] == "eu-west-1"
        assert summary["ruby_bench_content_id"] == "rb-content-1"
        html = (tmp_path / str(version) / "report" / "index.html").read_text()
        assert "rb-content-1" in html and "commit unknown" not in html
    summary = build_report([_run(tmp_path, 1, 1)], offline=True).summary
    p = summary["provenance"][0]
    assert p["ruby_bench_commit"] == ["09b76c8b0f94"] and p["metadata_format"] == [1]
    assert p["machines"] == ["old-host-1", "old-host-2", "old-host-3"]


def test_trust_row_per_type(tmp_path: Path) -> None:
    summary = build_report([_run(tmp_path, 3, 3)], offline=True).summary
    trust = summary["instance_types"][0]["trust"]
    conditions = {c["name"]: c for c in trust["conditions"]}
    for name in (
        "executables_verified",
        "aslr_disabled",
        "own_core",
        "siblings_idle",
        "env_clean",
        "engine_off_benchmark_cpus",
    ):
        assert conditions[name]["state"] == "verified", (name, conditions[name])
    assert trust["steal_pct"] == {"min": 0.1, "max": 0.30000000000000004}
    assert trust["cpu_pressure_some_pct"] == {"min": 1.5, "max": 4.5}
    assert "ASLR off" in trust["text"] and "steal 0.1-0.3%" in trust["text"]
    html = (tmp_path / "3" / "report" / "index.html").read_text()
    assert trust["text"] in html
    old = build_report([_run(tmp_path, 1, 1)], offline=True).summary
    states = {c["name"]: c["state"] for c in old["instance_types"][0]["trust"]["conditions"]}
    assert states["aslr_disabled"] == "not recorded" and states["own_core"] == "not recorded"


def test_any_false_check_excludes_its_task_with_the_reason(tmp_path: Path) -> None:
    run = _run(tmp_path, 3, 3)
    meta_path = run / "v3-2" / "metadata.json"
    failing = '"env_clean": true, "no_other_benchmark_on_cpus": false'
    meta_path.write_text(meta_path.read_text().replace('"env_clean": true', failing))
    summary = build_report([run], offline=True).summary
    reasons = {e["task_id"]: e["reason"] for e in summary["excluded"]}
    assert reasons[2] == "checks failed: no_other_benchmark_on_cpus"
    assert summary["instance_types"][0]["tasks"] == 2


def test_merge_with_different_ruby_bench_content_ids_refused(tmp_path: Path) -> None:
    one = _run(tmp_path, 1, 3)
    two = _run(tmp_path, 2, 3, content_id="rb-content-2")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloudbench",
            "report",
            str(one),
            str(two),
            "--offline",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "ruby-bench content id" in done.stderr and "--allow-mixed" in done.stderr
    assert "rb-content-1" in done.stderr and "rb-content-2" in done.stderr


def test_tasks_sharing_a_cpu_at_the_same_time_are_excluded(tmp_path: Path) -> None:
    """Issue 24: local aliases each pinned to CPU 0 of one machine, each labelled clean."""

    def task(i: int, alias: str, cpuset: str, start: str, end: str) -> SynthTask:
        clean = {
            "checks": {**CHECKS},
            "slot": {"concurrent": []},
            "cpuset": cpuset,
            "started_at": f"2026-12-07T{start}:00.000+00:00",
            "finished_at": f"2026-12-07T{end}:00.000+00:00",
        }
        return SynthTask(
            i, alias, "laptop", {"interp": {"fib": [1.0] * 3}}, provider="local", metadata=clean
        )

    tasks = [
        task(1, "box-a", "0", "17:07", "17:09"),
        task(2, "box-b", "0", "17:08", "17:10"),
        task(3, "box-c", "0", "17:10", "17:12"),  # starts as task 2 ends: fine
        task(4, "box-a", "1", "17:07", "17:09"),
    ]  # another CPU: fine
    summary = build_report([write_run(tmp_path, 1, tasks)], offline=True).summary
    reasons = {e["task_id"]: e["reason"] for e in summary["excluded"]}
    assert set(reasons) == {1, 2}
    assert reasons[1] == (
        "ran at the same time as task 2 (box-b) on CPU 0 of laptop: two benchmarks on one CPU"
    )
    assert {t["alias"]: t["tasks"] for t in summary["instance_types"]} == {
        "box-a": 1,
        "box-b": 0,
        "box-c": 1,
    }
    assert any("same CPU" in n for n in summary["notes"])


def test_trust_states() -> None:
    from cloudbench.report.trust import trust_row

    host = {
        "checks": {**CHECKS, "engine_off_benchmark_cpus": None},
        "cpu": {"slot_mode": "logical"},
        "slot": {"slots_sharing_cores": [1]},
    }
    old: dict[str, Any] = {}
    row = trust_row([host, old])
    states = {c["name"]: (c["state"], c["verified"]) for c in row["conditions"]}
    assert states["aslr_disabled"] == ("partly verified", 1)
    assert states["engine_off_benchmark_cpus"] == ("partly verified", 0)
    assert states["own_core"] == ("not verified", 0)  # logical slots share cores
    assert "own core (not on 1 of 2)" in row["text"]
    assert "ASLR off (1 of 2)" in row["text"] and "steal not recorded" in row["text"]
    only_host = trust_row([host])
    assert {c["name"]: c["state"] for c in only_host["conditions"]}[
        "engine_off_benchmark_cpus"
    ] == "not applicable"
    assert trust_row([])["text"] == "no task kept"

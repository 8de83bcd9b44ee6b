"""`cloudbench run` end to end on the local provider: host executor, fake ruby-bench."""

from __future__ import annotations

import itertools
import json
import os
import signal
from typing import Any

import pytest

from tests.master.conftest import Harness, fake_config, last_json, needs_ruby

pytestmark = [needs_ruby, pytest.mark.slow]


def _manifest(harness: Harness, run_id: int) -> dict[str, Any]:
    return dict(json.loads((harness.results / str(run_id) / "manifest.json").read_text()))


def test_two_instance_types_two_tasks_each(harness: Harness) -> None:
    harness.start(harness.config(fake_config(["a", "b"], 2, ["fib"])))
    code, out, err = harness.wait()
    assert code == 0, err
    summary = last_json(out)
    run_id = summary["run_id"]
    assert summary["exit_code"] == 0 and summary["tasks"]["completed"] == 4
    manifest = _manifest(harness, run_id)
    assert manifest["run_id"] == run_id and manifest["task_count"] == 4
    by_alias = sorted((t["alias"], t["run_number"], t["status"]) for t in manifest["tasks"])
    assert by_alias == [
        ("a", 1, "completed"),
        ("a", 2, "completed"),
        ("b", 1, "completed"),
        ("b", 2, "completed"),
    ]
    for task in manifest["tasks"]:
        folder = harness.results / str(run_id) / task["directory"]
        for name in ("output.txt", "output.json", "output.csv", "metadata.json"):
            assert (folder / name).is_file(), folder / name
    assert (harness.state / "orchestrator.sqlite3").is_file()  # kept for inspection
    # Two runner processes on one machine get disjoint CPUs (when there are enough).
    cpus: dict[str, set[str]] = {}
    for task in manifest["tasks"]:
        meta = json.loads(
            (harness.results / str(run_id) / task["directory"] / "metadata.json").read_text()
        )
        cpus.setdefault(task["alias"], set()).update(meta["cpuset"].split(","))
    if len(os.sched_getaffinity(0)) >= 2:
        assert not cpus["a"] & cpus["b"], cpus
    harness.assert_nothing_left()


def test_sigkilled_runner_times_out_and_run_still_completes(harness: Harness) -> None:
    config = fake_config(["a"], 2, ["sleepy"], instances=2)
    config["max_attempts"] = 1  # the timeout path: no retry of the killed runner's task
    harness.start(harness.config(config), timeout=3, FAKE_BENCH_SLEEP="4")
    run_id = harness.run_id()
    # Both runners busy: whichever we kill holds a task.
    harness.wait_for(
        lambda: [t["heartbeat_status"] for t in harness.tasks(run_id)] == ["running"] * 2
    )
    victim = harness.processes("runner")[0]
    os.kill(victim["pid"], signal.SIGKILL)
    code, _out, err = harness.wait()
    assert code == 2, err
    tasks = {t["task_id"]: t for t in _manifest(harness, run_id)["tasks"]}
    statuses = sorted(t["status"] for t in tasks.values())
    assert statuses == ["completed", "failed"], tasks
    failed = next(t for t in tasks.values() if t["status"] == "failed")
    assert failed["error"]["type"] == "timeout"
    done = next(t for t in tasks.values() if t["status"] == "completed")
    assert "output.json" in done["files"]
    harness.assert_nothing_left()


def test_orchestrator_killed_and_restarted_loses_no_task(harness: Harness) -> None:
    harness.start(harness.config(fake_config(["a", "b"], 2, ["sleepy"])), FAKE_BENCH_SLEEP="2")
    run_id = harness.run_id()
    harness.wait_for(lambda: any(t["status"] == "running" for t in harness.tasks(run_id)))
    first = harness.processes("orchestrator")[0]
    os.kill(first["pid"], signal.SIGKILL)
    harness.wait_for(
        lambda: any(p["pid"] != first["pid"] for p in harness.processes("orchestrator"))
    )
    code, _out, err = harness.wait()
    assert code == 0, err
    assert "restarting it" in err
    manifest = _manifest(harness, run_id)
    assert [t["status"] for t in manifest["tasks"]] == ["completed"] * 4
    harness.assert_nothing_left()


def test_sigint_stops_the_run_and_tears_everything_down(harness: Harness) -> None:
    harness.start(harness.config(fake_config(["a"], 3, ["sleepy"])), FAKE_BENCH_SLEEP="60")
    run_id = harness.run_id()
    harness.wait_for(lambda: any(t["status"] == "running" for t in harness.tasks(run_id)))
    assert harness.proc is not None
    harness.proc.send_signal(signal.SIGINT)
    code, out, err = harness.wait(timeout=60)
    assert code == 2, err
    summary = last_json(out)
    assert summary["status"] == "cancelled"
    manifest = _manifest(harness, run_id)
    assert manifest["removed_tasks"] == 2 and manifest["tasks"][0]["status"] == "cancelled"
    harness.assert_nothing_left()


def test_three_aliases_on_two_cores_take_turns_task_by_task(harness: Harness) -> None:
    """Issue 24: three local types on a 2-core machine (one benchmark core after
    housekeeping) all ran on CPU 0 at once and each said it was alone. Now they take turns:
    no two tasks whose CPUs intersect overlap in time (their metadata's started_at and
    finished_at are when the benchmark held its CPUs), or the task says it was not alone;
    and the turns go round the types, one task each."""
    config = fake_config(["a", "b", "c"], 2, ["sleepy"])
    harness.start(harness.config(config), FAKE_BENCH_SLEEP="2")
    code, _out, err = harness.wait(timeout=240)
    assert code == 0, err
    run_id = next(iter(harness.results.iterdir())).name
    manifest = json.loads((harness.results / run_id / "manifest.json").read_text())
    metas = [
        json.loads((harness.results / run_id / t["directory"] / "metadata.json").read_text())
        for t in manifest["tasks"]
    ]
    assert len(metas) == 6 and {m["format_version"] for m in metas} == {6}
    # Local runners have no boot script: user-data start is the runner's start (issue 27).
    for meta in metas:
        stages = meta["boot"]["stages"]
        assert stages["user_data_start"] == stages["runner_installed"], stages
        assert meta["boot"]["time_to_first_benchmark_s"] > 0, meta["boot"]
    if len(os.sched_getaffinity(0)) < 3:  # fewer cores than types: they share, in turns
        assert "take turns" in err
    for one, other in itertools.combinations(metas, 2):
        if not set(one["cpuset"].split(",")) & set(other["cpuset"].split(",")):
            continue
        apart = (
            one["finished_at"] <= other["started_at"] or other["finished_at"] <= one["started_at"]
        )
        labelled = not one["checks"]["own_core"] and not other["checks"]["own_core"]
        assert apart or labelled, (one["task_id"], other["task_id"], one["slot"], other["slot"])
        if apart:  # the machine-wide record agrees: neither saw the other on its CPUs
            assert other["task_id"] not in _same_cpu_tasks(one), one["slot"]["concurrent"]
            assert one["task_id"] not in _same_cpu_tasks(other), other["slot"]["concurrent"]
    shared = [m for m in metas if m["cpuset"] == metas[0]["cpuset"]]
    if len(shared) == 6:  # all on one CPU: the turns go round the types
        order = [m["alias"] for m in sorted(shared, key=lambda m: m["started_at"])]
        assert sorted(order[:3]) == ["a", "b", "c"] == sorted(order[3:]), order
    harness.assert_nothing_left()


def _same_cpu_tasks(meta: dict[str, Any]) -> set[int]:
    return {c["task_id"] for c in meta["slot"]["concurrent"] if c["same_cpus"]}

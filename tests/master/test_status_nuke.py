"""After a master dies: `status` re-attaches and cleans up; `nuke` finds and stops the rest."""

from __future__ import annotations

import signal
import time

import pytest

from tests.master.conftest import Harness, fake_config, last_json, needs_ruby

pytestmark = [needs_ruby, pytest.mark.slow]


def _orphan_a_run(harness: Harness, sleep: str) -> int:
    """Start a run, wait until a task runs, then SIGKILL the master (its children live on)."""
    harness.start(harness.config(fake_config(["a"], 2, ["sleepy"])), FAKE_BENCH_SLEEP=sleep)
    run_id = harness.run_id()
    harness.wait_for(lambda: any(t["status"] == "running" for t in harness.tasks(run_id)))
    assert harness.proc is not None
    harness.proc.send_signal(signal.SIGKILL)
    harness.wait()
    time.sleep(0.3)  # the watcher has seen every recorded process by now
    return run_id


def test_status_reattaches_downloads_and_cleans_up(harness: Harness) -> None:
    run_id = _orphan_a_run(harness, sleep="2")
    result = harness.cli("status", str(run_id), "--json", "--results-dir", str(harness.results))
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["tasks"]["completed"] == 2
    assert (harness.results / str(run_id) / "manifest.json").is_file()
    harness.assert_nothing_left()


def test_nuke_lists_asks_and_removes(harness: Harness) -> None:
    run_id = _orphan_a_run(harness, sleep="60")
    listing = harness.cli("nuke")  # not a terminal and no --yes: list only
    assert listing.returncode == 1, listing
    assert "orchestrator" in listing.stdout and "runner a-1" in listing.stdout
    assert f"run {run_id}" in listing.stdout and "nothing removed" in listing.stdout
    result = harness.cli("nuke", "--yes", "--run-id", str(run_id))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "left: nothing" in result.stdout
    harness.assert_nothing_left()
    again = harness.cli("nuke", "--yes", "--run-id", str(run_id))  # never others' containers
    assert again.returncode == 0 and "nothing to remove" in again.stdout

"""A SIGKILLed runner: its task is retried on another runner, its leftovers never break
the next one (issue 13, chaos fault 2). Real runner processes, real orchestrator."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess
from tests.runner.test_runner_integration import (
    _create_run,
    _runner_log,
    _tasks,
    _wait_status,
    start_runner,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.usefixtures("ruby")


def test_sigkilled_runner_task_is_retried_by_the_next_runner(
    pg_url: str,
    orchestrator_factory: OrchestratorFactory,
    start_runner: Callable[..., Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    orch = orchestrator_factory(
        pg_url, server="in_process", heartbeat_timeout=4, sweep_interval=0.5
    )
    run_id = _create_run(orch, tasks=1, names=["sleepy"])
    first = start_runner(orch, run_id, env={"FAKE_BENCH_SLEEP": "120"})
    _wait_status(orch, run_id, "running")
    first.send_signal(signal.SIGKILL)
    first.wait()
    leftovers = list((tmp_path / "work" / "tasks").glob("run_*"))
    assert leftovers, "a SIGKILLed runner leaves its task folder"
    # Same machine, same work dir: the retry must not trip over the leftovers.
    second = start_runner(orch, run_id, env={"FAKE_BENCH_SLEEP": "0"})
    assert second.wait(timeout=120) == 0, _runner_log(tmp_path)
    (task,) = _tasks(orch, run_id)
    assert (task["status"], task["attempt"]) == ("completed", 2), task
    history = [(a["outcome"], a["error_type"]) for a in task["attempts"]]
    assert history == [("retried", "timeout"), ("completed", None)]
    assert task["attempts"][0]["runner_id"] != task["attempts"][1]["runner_id"]


def test_a_stale_folder_with_the_same_name_is_cleared(
    orchestrator_server: OrchestratorProcess,
    start_runner: Callable[..., Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The reported fault: a killed runner's task_<id>_<lease>/ruby-bench made the next
    task with that id and lease fail with [Errno 17] File exists."""
    run_id = _create_run(orchestrator_server, tasks=1, names=["fib"])
    task_id = _tasks(orchestrator_server, run_id)[0]["id"]
    stale = tmp_path / "work" / "tasks" / f"run_{run_id}_task_{task_id}_attempt_1_lease_1"
    (stale / "ruby-bench").mkdir(parents=True)
    (stale / "out" / "old.json").parent.mkdir()
    (stale / "out" / "old.json").write_text("{}")
    proc = start_runner(orchestrator_server, run_id)
    assert proc.wait(timeout=120) == 0, _runner_log(tmp_path)
    (task,) = _tasks(orchestrator_server, run_id)
    assert (task["status"], task["attempt"]) == ("completed", 1), task
    assert not stale.exists()
    assert "stale task folder" in _runner_log(tmp_path)

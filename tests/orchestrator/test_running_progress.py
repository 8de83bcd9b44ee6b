"""`instance_types[].running_progress`: the running tasks' progress summed, in tasks."""

from __future__ import annotations

from tests.dashboard.helpers import heartbeat
from tests.orchestrator.helpers import CONFIG, claim, create_run
from tests.orchestrator_proc import OrchestratorProcess


def test_running_progress_sums_active_tasks(orchestrator: OrchestratorProcess) -> None:
    admin, runner = orchestrator.client(), orchestrator.client(role="runner")
    run_id = create_run(admin, {**CONFIG, "per_instance_type": {"tasks": 3}})["run_id"]

    def progress() -> dict[str, float]:
        run = admin.get(f"/runs/{run_id}").json()
        return {g["alias"]: g["running_progress"] for g in run["instance_types"]}

    assert progress() == {"lap": 0.0, "desktop": 0.0}
    for runner_id, pct in (("r1", 50), ("r2", 30)):
        task = dict(claim(runner, runner_id=runner_id)["task"], runner_id=runner_id)
        heartbeat(runner, task, status="running", current_benchmark="fib", progress_pct=pct)
    assert progress() == {"lap": 0.8, "desktop": 0.0}

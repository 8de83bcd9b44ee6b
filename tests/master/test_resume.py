"""`cloudbench run --resume` (issue 13): re-attach to a run whose master was killed."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import boto3
import pytest

from tests.master.conftest import Harness, fake_config, last_json, needs_ruby
from tests.master.test_aws_path import SETTINGS, _aws_config, fake_terraform
from tests.moto_aws import ec2_quotas
from tests.orchestrator_inproc import OrchestratorFactory

pytestmark = [pytest.mark.slow]
HEARTBEAT_TIMEOUT = 8.0


def _kill_master(harness: Harness) -> None:
    assert harness.proc is not None
    harness.proc.send_signal(signal.SIGKILL)
    harness.proc.wait()


@needs_ruby
def test_resume_after_killing_the_master_mid_run(harness: Harness) -> None:
    config = harness.config(fake_config(["a", "b"], 3, ["sleepy"]))
    # The killed runners' tasks stay `running` until this heartbeat timeout sweeps them
    # (the harness default, 30 s, would be most of this test's time).
    harness.start(config, timeout=HEARTBEAT_TIMEOUT, FAKE_BENCH_SLEEP="2")
    run_id = harness.run_id()
    harness.wait_for(lambda: any(t["status"] == "completed" for t in harness.tasks(run_id)))
    orchestrator = harness.processes("orchestrator")[0]
    _kill_master(harness)
    # The killed master's embedded orchestrator outlives it; make this the "gone" case.
    os.kill(orchestrator["pid"], signal.SIGKILL)

    # A changed config is refused, naming what differs; nothing is touched.
    changed = fake_config(["a", "b"], 4, ["sleepy"])
    result = harness.cli("run", str(harness.config(changed, "other.json")), "--resume", "latest")
    assert result.returncode == 1, result.stderr
    assert f"run {run_id} was started with another config" in result.stderr
    assert "per_instance_type.tasks: recorded 3, now 4" in result.stderr

    harness.start(config, "--resume", "latest", timeout=HEARTBEAT_TIMEOUT, FAKE_BENCH_SLEEP="2")
    code, out, err = harness.wait(timeout=180)
    assert code == 0, err
    assert f"resuming run {run_id}:" in out
    summary = last_json(out)
    assert summary["run_id"] == run_id and summary["tasks"]["completed"] == 6
    manifest = json.loads((harness.results / str(run_id) / "manifest.json").read_text())
    assert sorted(t["status"] for t in manifest["tasks"]) == ["completed"] * 6
    harness.assert_nothing_left()


def test_resume_unknown_run_is_one_line(harness: Harness) -> None:
    config = harness.config(fake_config(["a"], 1, ["fib"]))
    result = harness.cli("run", str(config), "--resume", "12345")
    assert result.returncode == 1
    assert result.stderr.startswith("error: --resume 12345: no record of that run here")
    assert "Traceback" not in result.stderr


@needs_ruby
def test_cloud_resume_reuses_orchestrator_and_applies_only_missing_stacks(
    harness: Harness,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_url: str,
    orchestrator_factory: OrchestratorFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = fake_terraform(tmp_path_factory.mktemp("tf"), sqlite_url, orchestrator_factory)
    config = harness.config(_aws_config(local=True))
    harness.start(config, environment=fake.env(FAKE_TF_SLEEP="1", FAKE_TF_FAIL="local", **SETTINGS))
    run_id = harness.run_id()
    # aws applied; the local stack's apply failed: the master gives up (as a crash would).
    code, _out, err = harness.wait()
    assert code == 1, err
    applied = harness.home / "terraform/default/runs" / str(run_id)
    # Its teardown destroyed both; pretend it was killed before that with aws applied.
    (applied / "aws" / ".cloudbench-applied").write_text("applied\n")
    before = len(fake.calls())
    # Its t3 VM is still up (2 vCPUs, tagged with the run), beside another run's; the quota
    # fits the two runs' VMs once each: the resumed run's own VM is "for this run", not
    # also "in use" (counted twice, 6 of 5 refused the resume).
    ec2: Any = boto3.client(  # tags built as plain dicts
        "ec2",
        region_name=SETTINGS["CLOUDBENCH_AWS_REGION"],
        endpoint_url=fake.aws_env["AWS_ENDPOINT_URL"],
        aws_access_key_id=fake.aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=fake.aws_env["AWS_SECRET_ACCESS_KEY"],
    )
    for owner in (str(run_id), "999"):
        tags = [{"Key": "Project", "Value": "cloudbench"}, {"Key": "RunId", "Value": owner}]
        ec2.run_instances(
            ImageId="ami-12c6146b",
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
    ec2_quotas(monkeypatch, {"L-1216C47A": 5})

    harness.start(config, "--resume", str(run_id), environment=fake.env(**SETTINGS))
    harness.wait_for(lambda: fake.find("apply", "local")[1:])
    with fake.orch.client() as api:
        api.post(f"/runs/{run_id}/stop")
    code, _out, err = harness.wait()
    assert code in (0, 2), err
    calls = [(c["argv"][1], c["stack"]) for c in fake.calls()[before:]]
    assert ("apply", "meta") not in calls, calls  # the orchestrator is reused
    assert ("apply", "aws") not in calls, calls  # applied already
    assert ("apply", "local") in calls, calls  # missing: applied again
    assert ("destroy", "aws") in calls and ("destroy", "local") in calls, calls
    assert not harness.sessions(), "session record left behind"
    assert "in eu-west-1: 2 in use + 2 for this run = 4 of 5: ok" in err, err

"""The master on the cloud path when VMs fail: it never hangs on VMs that cannot work.

Terraform is the FAKE of test_aws_path.py (no AWS here): its aws stack "launches" the
instances its `instances` output names, and nothing boots. This test plays those VMs
against the real orchestrator: it reports their boot stages over HTTP with the runner
token exactly as the user-data's curl does (`POST /runs/{id}/machines`), or stays silent.
The master, its watch loop, the orchestrator and its database are real.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.infra.test_boot_reporting import moto
from tests.master.conftest import Harness, fake_config
from tests.master.test_aws_path import SETTINGS, FakeTerraform, fake
from tests.orchestrator.test_lifecycle import result_tarball

__all__ = ["fake", "moto"]  # fixtures, imported for pytest


def _config(instances: int) -> dict[str, Any]:
    config = fake_config([], 2, ["fib"], instances=instances)
    config["aws"] = [{"instance_type": "t3.micro", "alias": "t3"}]
    return config


def _launch(tmp: Path, fake: FakeTerraform, ids: list[str]) -> dict[str, str]:
    """The aws stack's `instances` output, as Terraform would print it."""
    path = tmp / "aws-outputs.json"
    instances = {
        f"t3-{n}": {
            "id": vm,
            "instance_type": "t3.micro",
            "alias": "t3",
            "public_ip": None,
            "private_ip": f"10.0.1.{20 + n}",
        }
        for n, vm in enumerate(ids)
    }
    path.write_text(json.dumps({"instances": instances}))
    return {"FAKE_TF_AWS_OUTPUTS": str(path)}


def _report(fake: FakeTerraform, run_id: int, vm: str, stage: str, **extra: str) -> None:
    body = {
        "instance_id": vm,
        "provider": "aws",
        "instance_type": "t3.micro",
        "alias": "t3",
        "stage": stage,
        **extra,
    }
    auth = {"Authorization": f"Bearer {fake.orch.runner_token}"}
    got = httpx.post(f"{fake.orch.url}/runs/{run_id}/machines", json=body, headers=auth)
    assert got.status_code == 200, got.text


def test_an_erroring_vm_and_a_silent_one_stop_the_type_and_exit_1(
    harness: Harness, fake: FakeTerraform
) -> None:
    env = {**fake.env(**SETTINGS), **_launch(harness.tmp, fake, ["i-0fail", "i-0silent"])}
    harness.start(harness.config(_config(instances=2)), "--boot-timeout", "12", environment=env)
    run_id = harness.run_id()
    harness.wait_for(lambda: fake.find("apply", "aws") and fake.find("output", "aws"))
    _report(fake, run_id, "i-0fail", "boot", message="cloudbench: boot")
    # The progress view shows the VM's stage, since when and last line.
    harness.wait_for(lambda: "vm t3 i-0fail: boot (for" in (harness.tmp / "stdout").read_text())
    tail = "Collecting cloudbench\nERROR: No matching distribution found for cloudbench"
    _report(fake, run_id, "i-0fail", "error", message="pip download failed (exit 1)", log_tail=tail)
    failed_at = time.monotonic()
    code, out, err = harness.wait(timeout=90)
    assert code == 1, err
    # Stopped once the silent VM's boot timeout passed, not at a task or budget timeout.
    assert time.monotonic() - failed_at < 12 + 60, err
    assert "every runner of t3 has exited with 2 task(s) left" in err, err
    assert "VM i-0fail boot/runner error: pip download failed (exit 1)" in err, err
    assert "VM i-0silent never called in within --boot-timeout 12s" in err, err
    assert "vm t3 i-0silent: launched" in out, out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["tasks"]["completed"] == 0
    assert fake.find("destroy", "aws"), "the provider stack was not destroyed"


def test_one_working_vm_keeps_the_type_alive(harness: Harness, fake: FakeTerraform) -> None:
    """A type with one VM left that calls in is not stopped when its other VM fails."""
    env = {**fake.env(**SETTINGS), **_launch(harness.tmp, fake, ["i-0fail", "i-0good"])}
    # --heartbeat-timeout 12: silence counts 12 s after the last report (30 s by default).
    harness.start(
        harness.config(_config(instances=2)), "--boot-timeout", "10", timeout=12, environment=env
    )
    run_id = harness.run_id()
    harness.wait_for(lambda: fake.find("output", "aws"))
    _report(fake, run_id, "i-0fail", "error", message="apt-get failed")
    deadline = time.monotonic() + 15  # past the boot timeout
    while time.monotonic() < deadline:
        _report(fake, run_id, "i-0good", "running", message="runner: 1 slot(s)")
        assert harness.proc is not None and harness.proc.poll() is None, harness.output()
        time.sleep(1)
    # Then the good VM falls silent: it is counted too, and the type stops.
    code, _out, err = harness.wait(timeout=120)
    assert code == 1, err
    assert "VM i-0good stopped calling in" in err and "at stage running" in err, err
    assert "VM i-0fail boot/runner error: apt-get failed" in err, err


def test_debug_keeps_the_failed_vms_stack_and_says_how_to_reach_it(
    harness: Harness, fake: FakeTerraform
) -> None:
    meta = json.loads(fake.outputs.read_text())
    meta["bastion_ssh_command"] = "ssh -J ubuntu@198.51.100.7 ubuntu@10.0.1.10"
    fake.outputs.write_text(json.dumps(meta))
    env = {**fake.env(**SETTINGS), **_launch(harness.tmp, fake, ["i-0dbg"])}
    harness.start(
        harness.config(_config(instances=1)), "--debug", "--boot-timeout", "60", environment=env
    )
    run_id = harness.run_id()
    harness.wait_for(lambda: fake.find("output", "aws"))
    _report(fake, run_id, "i-0dbg", "error", message="task 1 failed; staying up (--debug)")
    code, out, err = harness.wait(timeout=90)
    assert code == 1, err
    both = out + err
    assert "debug: VM i-0dbg (t3): ssh -J ubuntu@198.51.100.7 ubuntu@10.0.1.20" in both, both
    assert f"cloudbench nuke --run-id {run_id}" in both, both
    assert not fake.find("destroy", "aws"), "--debug destroyed the failed VM's stack"
    assert json.loads(fake.find("apply", "aws")[0]["tf_vars"]["TF_VAR_debug"]) is True


def _claim(fake: FakeTerraform, run_id: int, host: str) -> dict[str, Any]:
    body = {
        "provider": "aws",
        "instance_type": "t3.micro",
        "alias": "t3",
        "runner_id": f"{host}-0",
        "host": host,
    }
    auth = {"Authorization": f"Bearer {fake.orch.runner_token}"}
    got = httpx.post(f"{fake.orch.url}/runs/{run_id}/tasks/claim", json=body, headers=auth)
    assert got.status_code == 200, got.text
    return dict(got.json())


def test_a_silent_vms_task_is_retried_on_the_types_other_vm(
    harness: Harness, fake: FakeTerraform
) -> None:
    """The master hands a dead VM's task back at once (instance_terminated); the type's
    other VM claims it long before the orchestrator's 120 s heartbeat timeout."""
    config = _config(instances=2)
    config["per_instance_type"]["tasks"] = 1
    env = {**fake.env(**SETTINGS), **_launch(harness.tmp, fake, ["i-0dies", "i-0lives"])}
    # --heartbeat-timeout 20: runners heartbeat every 5 s; silence counts after 20 s.
    harness.start(harness.config(config), "--boot-timeout", "300", timeout=20, environment=env)
    run_id = harness.run_id()
    harness.wait_for(lambda: fake.find("output", "aws"))
    _report(fake, run_id, "i-0dies", "running", host="host-dies", message="runner: 1 slot(s)")
    task = _claim(fake, run_id, "host-dies")["task"]
    silent_from = time.monotonic()
    alive = threading.Event()

    def keep_alive() -> None:
        while not alive.wait(2):
            _report(fake, run_id, "i-0lives", "running", host="host-lives")

    thread = threading.Thread(target=keep_alive, daemon=True)
    thread.start()
    try:
        claimed = harness.wait_for(
            lambda: (c := _claim(fake, run_id, "host-lives"))["status"] == "assigned" and c,
            timeout=90,
        )
    finally:
        alive.set()
        thread.join()
    assert claimed["task"]["id"] == task["id"] and claimed["task"]["attempt"] == 2
    assert time.monotonic() - silent_from < 60  # not the orchestrator's 120 s sweep
    with httpx.Client(
        base_url=fake.orch.url, headers={"Authorization": f"Bearer {fake.orch.admin_token}"}
    ) as admin:
        [row] = admin.get(f"/runs/{run_id}/tasks").json()["tasks"]
        assert row["attempts"][0]["error_type"] == "instance_terminated", row
        assert "instance i-0dies lost: stopped calling in" in row["attempts"][0]["error_message"]
        admin.post(f"/runs/{run_id}/stop")
    code, _out, err = harness.wait(timeout=90)
    assert code == 2, err  # stopped by us, not by the master for a dead type
    assert "every runner of t3 has exited" not in err


def test_a_dead_type_stops_while_the_other_type_finishes(
    harness: Harness, fake: FakeTerraform
) -> None:
    """Every VM of t3 fails: t3 stops (its tasks removed), m7 goes on and completes, the
    results are downloaded and the master exits 1 naming t3's cause."""
    config = _config(instances=1)
    config["aws"].append({"instance_type": "m7i.large", "alias": "m7"})
    path = harness.tmp / "aws-outputs.json"
    instances = {
        "t3-0": {"id": "i-0t3", "alias": "t3", "instance_type": "t3.micro"},
        "m7-0": {"id": "i-0m7", "alias": "m7", "instance_type": "m7i.large"},
    }
    path.write_text(json.dumps({"instances": instances}))
    env = {**fake.env(**SETTINGS), "FAKE_TF_AWS_OUTPUTS": str(path)}
    harness.start(harness.config(config), "--boot-timeout", "300", environment=env)
    run_id = harness.run_id()
    harness.wait_for(lambda: fake.find("output", "aws"))
    m7 = {"instance_type": "m7i.large", "alias": "m7"}
    _report(fake, run_id, "i-0m7", "running", host="host-m7", **m7)
    _report(fake, run_id, "i-0t3", "error", message="pip download failed (exit 1)")
    harness.wait_for(lambda: "every runner of t3 has exited" in harness.output())
    auth = {"Authorization": f"Bearer {fake.orch.runner_token}"}
    with httpx.Client(base_url=fake.orch.url, headers=auth, timeout=30) as runner:
        for _ in range(2):
            got = runner.post(
                f"/runs/{run_id}/tasks/claim",
                json={
                    "provider": "aws",
                    "runner_id": "host-m7-0",
                    "host": "host-m7",
                    **m7,
                },
            ).json()
            assert got["status"] == "assigned", got
            task, urls = got["task"], got["presigned_urls"]
            put = httpx.put(
                urls["result_upload_url"], content=result_tarball(), headers={"If-None-Match": "*"}
            )
            assert put.status_code in (200, 201, 204), put.text
            done = runner.post(
                f"/tasks/{task['id']}/complete",
                json={
                    "runner_id": "host-m7-0",
                    "lease": task["lease"],
                    "s3_result_key": urls["result_key"],
                },
            )
            assert done.status_code == 200, done.text
    code, out, err = harness.wait(timeout=90)
    assert code == 1, err
    assert "VM i-0t3 boot/runner error: pip download failed (exit 1)" in err, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["tasks"]["completed"] == 2 and summary["tasks"]["removed"] == 2, summary


def test_an_instance_ec2_reports_gone_is_counted_at_once(
    harness: Harness, fake: FakeTerraform, moto: str
) -> None:
    """A VM that called in and then vanished (terminated under it) is counted from what
    EC2 says (moto's server here), long before its silence would count."""
    creds = {"AWS_ENDPOINT_URL": moto, "AWS_ACCESS_KEY_ID": "fake", "AWS_SECRET_ACCESS_KEY": "fake"}
    ec2 = boto3.client(
        "ec2",
        region_name="eu-west-1",
        endpoint_url=moto,
        aws_access_key_id="fake",
        aws_secret_access_key="fake",
    )
    image = ec2.describe_images()["Images"][0]["ImageId"]
    vm = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    env = {**fake.env(**SETTINGS, **creds), **_launch(harness.tmp, fake, [vm])}
    # --heartbeat-timeout 120: silence would count only after 120 s.
    harness.start(
        harness.config(_config(instances=1)), "--boot-timeout", "300", timeout=120, environment=env
    )
    run_id = harness.run_id()
    harness.wait_for(lambda: fake.find("output", "aws"))
    _report(fake, run_id, vm, "running", host="host-a", message="runner: 1 slot(s)")
    harness.wait_for(lambda: f"vm t3 {vm}: running" in (harness.tmp / "stdout").read_text())
    ec2.terminate_instances(InstanceIds=[vm])
    gone_at = time.monotonic()
    code, _out, err = harness.wait(timeout=120)
    assert code == 1, err
    assert time.monotonic() - gone_at < 45, "counted by silence, not by EC2's answer"
    assert f"VM {vm} vanished: EC2 reports it " in err, err

"""`cloudbench run` on its Azure path, mixed with AWS, with a FAKE `terraform`.

FAKES, because neither exists here: `terraform` (providers cannot be downloaded; the fake
of tests/master/test_aws_path.py records every call) and Azure itself. The VM-size lookup
goes to the ARM-shaped HTTPS stand-in of tests/nuke/arm_standin.py, reached by the real
SDK pipeline with a token from DefaultAzureCredential's managed-identity path (the
stand-in's App Service-style token endpoint). The orchestrator and the run are real.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloudbench.master.client import OrchestratorClient
from cloudbench.protocol import SUITE_SHA256_HEADER
from tests.infra.test_boot_reporting import moto as moto
from tests.master.conftest import Harness, fake_config
from tests.master.test_aws_path import SETTINGS, FakeTerraform, _no_secret_anywhere
from tests.master.test_aws_path import fake as fake
from tests.nuke.arm_standin import Standin, vm_sku

pytestmark = [pytest.mark.slow]

SUB = "0b4c8a8e-5f7e-4d1e-9a61-3c2b1a0f9e8d"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake test@example"


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[Standin]:
    (tmp_path / "arm").mkdir()
    with Standin(tmp_path / "arm", SUB) as standin:
        standin.world.skus = [
            vm_sku("Standard_D2pls_v6", "westeurope", "Arm64", True, "V2", "NVMe"),
            vm_sku("Standard_D2als_v6", "westeurope", "x64", True, "V1,V2", "SCSI, NVMe"),
            vm_sku("Standard_A2_v2", "westeurope", "x64", False, "V1"),
            vm_sku("Standard_D2pls_v6", "eastus", "Arm64", True),
        ]
        yield standin


def _azure_env(arm: Standin, **extra: str) -> dict[str, str]:
    return {
        "CLOUDBENCH_AZURE_SUBSCRIPTION_ID": SUB,
        "CLOUDBENCH_AZURE_LOCATION": "westeurope",
        "CLOUDBENCH_AZURE_SSH_PUBLIC_KEY": SSH_KEY,
        "CLOUDBENCH_AZURE_ARM_ENDPOINT": arm.url,
        "REQUESTS_CA_BUNDLE": str(arm.ca),
        "IDENTITY_ENDPOINT": f"{arm.url}/msi/token",
        "IDENTITY_HEADER": arm.world.identity_header,
        **SETTINGS,
        **extra,
    }


def _config(azure_only: bool = False) -> dict[str, Any]:
    config = fake_config([], 1, ["fib"])
    config["azure"] = [
        {"instance_type": "Standard_D2pls_v6", "alias": "cobalt100"},
        {"instance_type": "Standard_A2_v2", "capacity": "spot", "max_price": 0.05},
    ]
    if not azure_only:
        config["aws"] = [{"instance_type": "t3.micro", "alias": "t3"}]
    # A budget the run fits: its max_hours becomes every VM's hard lifetime.
    config["budget"] = {"max_usd": 50, "max_hours": 3}
    config["prices"] = {"t3.micro": 0.0104, "Standard_D2pls_v6": 0.0864, "Standard_A2_v2": 0.091}
    return config


def _nat_group(fake: FakeTerraform, moto: str) -> tuple[Any, str, dict[str, str]]:
    """The meta stack's runner_nat group, in moto; the azure stack's NAT address."""
    aws = {"AWS_ENDPOINT_URL": moto, "AWS_ACCESS_KEY_ID": "fake", "AWS_SECRET_ACCESS_KEY": "fake"}
    ec2 = boto3.client(
        "ec2",
        region_name="eu-west-1",
        endpoint_url=moto,
        aws_access_key_id="fake",
        aws_secret_access_key="fake",
    )
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="nat", Description="t", VpcId=vpc)["GroupId"]
    outputs = json.loads(fake.outputs.read_text()) | {"runner_nat_security_group_id": group}
    fake.outputs.write_text(json.dumps(outputs))
    azure_outputs = fake.outputs.parent / "azure-outputs.json"
    azure_outputs.write_text(json.dumps({"nat_public_ip": "198.51.100.23", "instances": {}}))
    return ec2, group, {**aws, "FAKE_TF_AZURE_OUTPUTS": str(azure_outputs)}


def _cidrs(ec2: Any, group: str) -> list[tuple[str, int]]:
    found = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]
    return [(r["CidrIp"], p["FromPort"]) for p in found for r in p.get("IpRanges", [])]


def test_aws_and_azure_stacks_apply_in_parallel_after_meta(
    harness: Harness, fake: FakeTerraform, arm: Standin, moto: str
) -> None:
    ec2, group, aws_env = _nat_group(fake, moto)
    harness.start(
        harness.config(_config()),
        environment=fake.env(FAKE_TF_SLEEP="1", **_azure_env(arm), **aws_env),
    )
    run_id = harness.run_id()
    harness.wait_for(lambda: fake.find("apply", "aws") and len(fake.find("apply", "azure")) == 2)
    # Azure runners are admitted at the orchestrator (its URL's port) from their NAT address.
    assert _cidrs(ec2, group) == [("198.51.100.23/32", int(fake.orch.url.rsplit(":", 1)[1]))]
    with OrchestratorClient(fake.orch.url, fake.orch.admin_token) as api:
        api.stop_run(run_id)
    code, _out, err = harness.wait()
    assert code in (0, 2), err

    meta_apply = fake.find("apply", "meta")[0]
    aws, (az_network, az) = fake.find("apply", "aws")[0], fake.find("apply", "azure")
    assert meta_apply["end"] <= min(aws["start"], az_network["start"])
    assert aws["start"] < az["end"] and az_network["start"] < aws["end"]  # in parallel
    # The network (and NAT address) first, the VMs once the address is admitted.
    assert az_network["tf_vars"]["TF_VAR_launch_vms"] == "false"
    assert az["tf_vars"]["TF_VAR_launch_vms"] == "true" and az["start"] >= az_network["end"]

    tf = az["tf_vars"]
    assert tf["TF_VAR_subscription_id"] == SUB and tf["TF_VAR_location"] == "westeurope"
    assert tf["TF_VAR_run_id"] == str(run_id)
    # Architecture and disk support as the SKU API reported them for that location.
    assert json.loads(tf["TF_VAR_instance_types"]) == [
        {
            "instance_type": "Standard_D2pls_v6",
            "alias": "cobalt100",
            "architecture": "Arm64",
            "premium_io": True,
            "gen2": True,
            "disk_controller_type": "NVMe",
            "instances": 1,
            "capacity": "on-demand",
            "max_price": None,
        },
        {
            "instance_type": "Standard_A2_v2",
            "alias": "Standard_A2_v2",
            "architecture": "x64",
            "premium_io": False,
            "gen2": False,
            "disk_controller_type": "SCSI",
            "instances": 1,
            "capacity": "spot",
            "max_price": 0.05,
        },
    ]
    # Azure VMs are outside the meta VPC: the public URL, not the private one.
    assert tf["TF_VAR_orchestrator_url"] == fake.orch.url
    assert tf["TF_VAR_ssh_public_key"] == SSH_KEY
    assert "TF_VAR_runner_token" in az["env_names"]
    # --ruby-bench reaches Azure VMs through the orchestrator: stored with the run, its
    # sha256 in the custom data (the AWS stack ships it through the bucket instead).
    with fake.orch.client(role="runner") as runner:
        shipped = runner.get(f"/ruby-bench/{run_id}")
    assert shipped.status_code == 200, shipped.text
    sha = hashlib.sha256(shipped.content).hexdigest()
    assert tf["TF_VAR_ruby_bench_sha256"] == sha == shipped.headers[SUITE_SHA256_HEADER]
    with tarfile.open(fileobj=io.BytesIO(shipped.content)) as tar:
        assert "./run_benchmarks.rb" in tar.getnames()
    assert "TF_VAR_ruby_bench_sha256" not in aws["tf_vars"]
    assert aws["tf_vars"]["TF_VAR_ship_ruby_bench"] == "true"
    for call in (aws, az):
        assert call["tf_vars"]["TF_VAR_max_lifetime_minutes"] == "180"
    assert "SKUS location eq 'westeurope'" in arm.world.log

    for stack in ("aws", "azure"):
        destroy = fake.find("destroy", stack)
        assert destroy and destroy[0]["start"] >= max(aws["end"], az["end"]), stack
        assert (harness.tmp / "logs" / str(run_id) / f"{stack}.log").is_file()
    _no_secret_anywhere(fake, harness.home, harness.state, harness.tmp / "logs")
    assert not harness.sessions(), "the session outlived the run"
    assert _cidrs(ec2, group) == []  # the run's entry went with its stacks

    ledger = json.loads((harness.results / str(run_id) / "cost-ledger.json").read_text())
    entries = {e["instance_type"]: e for e in ledger["entries"]}
    assert set(entries) == {"t3.micro", "Standard_D2pls_v6", "Standard_A2_v2"}
    assert entries["t3.micro"]["usd_per_hour"] == 0.0104 and ledger["unpriced"] == []
    az_vm = entries["Standard_D2pls_v6"]
    launched = datetime.fromisoformat(az_vm["launched_at"]).timestamp()
    terminated = datetime.fromisoformat(az_vm["terminated_at"]).timestamp()
    assert az["end"] - 1 <= launched <= az["end"] + 2
    assert terminated >= fake.find("destroy", "azure")[0]["end"] - 0.5
    assert abs(az_vm["instance_hours"] - (terminated - launched) / 3600) < 1e-6
    # Issue 27: the ledger says which capacity ran; an Azure Spot type without a spot
    # price keeps the on-demand price (its cap, -1) and says so.
    spot = entries["Standard_A2_v2"]
    assert (spot["capacity"], spot["usd_per_hour"]) == ("spot", 0.091)
    assert spot["price_source"] == "on-demand price (spot cap; no spot price found): config"
    assert (az_vm["capacity"], az_vm["price_source"]) == ("on-demand", "config")


def test_dry_run_says_the_zones_and_quotas_of_each_size(
    harness: Harness, fake: FakeTerraform, arm: Standin
) -> None:
    """--dry-run asks ARM what `cloudbench run` asks before any terraform call (the stand-in
    answers for Azure, which cannot be reached here) and says it; too few vCPUs: exit 1."""
    family = {"value": "standardDPLSv6Family", "localizedValue": "Standard DPLSv6 Family vCPUs"}
    cores = {"value": "cores", "localizedValue": "Total Regional vCPUs"}
    arm.world.usages["westeurope"] = [
        {"limit": 10, "currentValue": 2, "unit": "Count", "name": family},
        {"limit": 20, "currentValue": 3, "unit": "Count", "name": cores},
    ]
    path = harness.config(_config(azure_only=True))
    result = harness.cli("run", str(path), "--dry-run", **fake.env(**_azure_env(arm)))
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "azure zones for Standard_D2pls_v6 in westeurope: 1, 2, 3 (the VM is regional)" in said
    line = "azure quota cores (Total Regional vCPUs) in westeurope: 3 in use + 4 for this run"
    assert f"{line} = 7 of 20: ok" in said, said
    assert not fake.calls()
    arm.world.usages["westeurope"][1]["limit"] = 6
    result = harness.cli("run", str(path), "--dry-run", **fake.env(**_azure_env(arm)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refused: azure: quota cores (Total Regional vCPUs) in westeurope is 6 vCPUs" in (
        result.stdout
    ), result.stdout
    assert not fake.calls()


def test_missing_credentials_are_one_line_before_any_terraform(
    harness: Harness, fake: FakeTerraform, arm: Standin
) -> None:
    env = _azure_env(arm)
    del env["IDENTITY_ENDPOINT"], env["IDENTITY_HEADER"]
    result = harness.cli("run", str(harness.config(_config(azure_only=True))), **fake.env(**env))
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no usable Azure credentials" in lines[0], result.stderr
    assert "az login" in lines[0]
    assert not fake.calls()


def test_missing_azure_settings_and_unknown_sizes_are_named(
    harness: Harness, fake: FakeTerraform, arm: Standin
) -> None:
    env = _azure_env(arm)
    del env["CLOUDBENCH_AZURE_LOCATION"]
    path = harness.config(_config(azure_only=True))
    result = harness.cli("run", str(path), **fake.env(**env))
    assert result.returncode == 1
    assert "CLOUDBENCH_AZURE_LOCATION" in result.stderr
    config = _config(azure_only=True)
    config["azure"].append({"instance_type": "Standard_Imaginary_v9"})
    del config["budget"]  # else its missing price is refused first
    result = harness.cli(
        "run", str(harness.config(config, "b.json")), **fake.env(**_azure_env(arm))
    )
    assert result.returncode == 1
    assert "VM size Standard_Imaginary_v9 is not offered in westeurope" in result.stderr
    assert not fake.calls()


def test_a_vcpu_quota_too_small_is_refused_before_any_terraform(
    harness: Harness, fake: FakeTerraform, arm: Standin, moto: str
) -> None:
    """The location's Compute usages (ARM's shape, from the stand-in): the Dplsv6 family
    has 2 vCPUs left, the run's cobalt100 VM needs 2 and the A2 v2 VM 2 more of `cores`."""
    family = {"value": "standardDPLSv6Family", "localizedValue": "Standard DPLSv6 Family vCPUs"}
    cores = {"value": "cores", "localizedValue": "Total Regional vCPUs"}
    arm.world.usages["westeurope"] = [
        {"limit": 10, "currentValue": 8, "unit": "Count", "name": family},
        {"limit": 12, "currentValue": 9, "unit": "Count", "name": cores},
    ]
    path = harness.config(_config(azure_only=True))
    result = harness.cli("run", str(path), **fake.env(**_azure_env(arm)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "error: azure: quota cores (Total Regional vCPUs) in westeurope is 12 vCPUs; 9 in use "
        "+ 4 for this run = 13; request more (Azure portal: Quotas > Compute"
    ) in result.stderr, result.stderr
    assert "standardDPLSv6Family" not in result.stderr  # 8 + 2 = 10 of 10 fits
    assert not fake.calls()
    arm.world.usages["westeurope"][1]["limit"] = 13
    _ec2, _group, aws_env = _nat_group(fake, moto)
    harness.start(path, environment=fake.env(**_azure_env(arm), **aws_env))
    harness.wait_for(lambda: fake.find("apply", "azure"))
    with OrchestratorClient(fake.orch.url, fake.orch.admin_token) as api:
        api.stop_run(harness.run_id())
    code, _out, err = harness.wait()
    assert code in (0, 2), err
    assert (
        "azure quota cores (Total Regional vCPUs) in westeurope: 9 in use + 4 for this run "
        "= 13 of 13: ok"
    ) in err
    assert "azure zones for Standard_D2pls_v6 in westeurope: 1, 2, 3 (the VM is regional)" in err


def test_quota_refusal_is_one_clear_line_and_everything_is_destroyed(
    harness: Harness, fake: FakeTerraform, arm: Standin
) -> None:
    quota = (
        "Error: creating Linux Virtual Machine: compute.VirtualMachinesClient#CreateOrUpdate: "
        'Code="OperationNotAllowed" Message="Operation could not be completed as it results '
        'in exceeding approved standardDPLSv6Family Cores quota."'
    )
    env = _azure_env(arm, FAKE_TF_FAIL="azure", FAKE_TF_ERROR=quota)
    harness.start(harness.config(_config(azure_only=True)), environment=fake.env(**env))
    code, _out, err = harness.wait()
    assert code == 1, err
    assert "stack azure: the subscription's vCPU quota in westeurope" in err
    assert "request more" in err
    assert "cloudbench nuke --provider azure" in err
    assert fake.find("destroy", "azure"), "the failed stack was not destroyed"

"""The AWS sweep against moto's standalone server: real boto3 calls over HTTP.

The code under test has no test hook; boto3 reads AWS_ENDPOINT_URL like any setting.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from cloudbench.nuke.aws import execute_nuke, plan_nuke
from tests.pg import free_port

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh emulated account, reachable through the standard environment only."""
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return moto_url


def _tags(run_id: str | None) -> list[dict[str, str]]:
    if run_id is None:
        return [{"Key": "Owner", "Value": "someone-else"}]
    tags = [{"Key": "Project", "Value": "cloudbench"}]
    if run_id != "meta":
        tags.append({"Key": "RunId", "Value": run_id})
    return tags


def _spec(kind: str, run_id: str | None) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": _tags(run_id)}]


def _network(ec2: Any, run_id: str | None, cidr: str) -> dict[str, str]:
    vpc = ec2.create_vpc(CidrBlock=cidr, TagSpecifications=_spec("vpc", run_id))["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(
        VpcId=vpc, CidrBlock=cidr, TagSpecifications=_spec("subnet", run_id)
    )["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway(TagSpecifications=_spec("internet-gateway", run_id))
    igw_id = igw["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc, TagSpecifications=_spec("route-table", run_id))
    table_id = table["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
    ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet)
    return {"vpc": vpc, "subnet": subnet}


def _security_groups(ec2: Any, vpc: str, run_id: str | None) -> list[str]:
    """Two groups that reference each other, which blocks a naive delete."""
    ids = [
        ec2.create_security_group(
            GroupName=f"g{n}-{run_id}",
            Description="test",
            VpcId=vpc,
            TagSpecifications=_spec("security-group", run_id),
        )["GroupId"]
        for n in range(2)
    ]
    for mine, other in (ids, ids[::-1]):
        ec2.authorize_security_group_ingress(
            GroupId=mine,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 22,
                    "ToPort": 22,
                    "UserIdGroupPairs": [{"GroupId": other}],
                }
            ],
        )
    return ids


def _compute(ec2: Any, net: dict[str, str], groups: list[str], run_id: str | None) -> None:
    # By name, as the stacks look AMIs up: moto answers all ~1,300 images in ~1 s otherwise.
    al2023 = [{"Name": "name", "Values": ["al2023-ami-2023*x86_64"]}]
    image = ec2.describe_images(Owners=["amazon"], Filters=al2023)["Images"][0]["ImageId"]
    ec2.run_instances(
        ImageId=image,
        MinCount=2,
        MaxCount=2,
        InstanceType="t3.micro",
        SubnetId=net["subnet"],
        SecurityGroupIds=groups[:1],
        TagSpecifications=_spec("instance", run_id),
    )
    eni = ec2.create_network_interface(
        SubnetId=net["subnet"],
        Groups=groups[1:],
        TagSpecifications=_spec("network-interface", run_id),
    )["NetworkInterface"]["NetworkInterfaceId"]
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=_spec("elastic-ip", run_id))
    ec2.associate_address(AllocationId=eip["AllocationId"], NetworkInterfaceId=eni)


def _bucket(s3: Any, name: str, run_id: str | None) -> None:
    s3.create_bucket(Bucket=name)
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(run_id)})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    for n in range(3):
        s3.put_object(Bucket=name, Key=f"results/{n}.json", Body=b"{}")
        s3.put_object(Bucket=name, Key=f"results/{n}.json", Body=b"{} ")
    s3.delete_object(Bucket=name, Key="results/0.json")  # leaves a delete marker


def _iam_and_ssm(run_id: str | None, suffix: str) -> None:
    iam, ssm = boto3.client("iam"), boto3.client("ssm")
    name = f"cloudbench-{suffix}"
    trust = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
    )
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":"ssm:GetParameter","Resource":"*"}]}'
    )
    iam.create_role(
        RoleName=name, Path="/cloudbench/", AssumeRolePolicyDocument=trust, Tags=_tags(run_id)
    )
    iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=policy)
    iam.create_instance_profile(InstanceProfileName=name, Path="/cloudbench/", Tags=_tags(run_id))
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    ssm.put_parameter(
        Name=f"/cloudbench/{suffix}/token", Value="s3cret", Type="SecureString", Tags=_tags(run_id)
    )


def _world(run_id: str | None, n: int) -> None:
    ec2: Any = boto3.client("ec2")  # as the helpers take it: plain dict tag specifications
    s3 = boto3.client("s3")
    net = _network(ec2, run_id, f"10.{n}.0.0/16")
    groups = _security_groups(ec2, net["vpc"], run_id)
    _compute(ec2, net, groups, run_id)
    _bucket(s3, f"bucket-{n}-{run_id or 'untagged'}", run_id)
    _iam_and_ssm(run_id, f"{n}-{run_id or 'untagged'}")
    ec2.create_key_pair(KeyName=f"key-{n}", TagSpecifications=_spec("key-pair", run_id))


def _untagged_survive() -> None:
    ec2, s3 = boto3.client("ec2"), boto3.client("s3")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Owner", "Values": ["someone-else"]}])["Vpcs"]
    assert len(vpcs) == 1
    running = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Owner", "Values": ["someone-else"]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )["Reservations"]
    assert sum(len(r["Instances"]) for r in running) == 2
    assert s3.list_objects_v2(Bucket="bucket-9-untagged")["KeyCount"] == 2
    assert boto3.client("iam").get_role(RoleName="cloudbench-9-untagged")
    assert boto3.client("ssm").get_parameter(Name="/cloudbench/9-untagged/token")


def test_plan_lists_only_tagged_resources(aws: str) -> None:
    _world("r1", 1)
    _world(None, 9)
    plan = plan_nuke()
    assert plan.errors == []
    assert plan.region == REGION
    counts = plan.counts()
    assert counts["instance"] == 2
    assert counts["vpc"] == 1
    assert counts["security-group"] == 2
    assert counts["bucket"] == 1
    assert counts["iam-role"] == counts["instance-profile"] == counts["ssm-parameter"] == 1
    assert {
        "subnet",
        "internet-gateway",
        "route-table",
        "elastic-ip",
        "key-pair",
        "network-interface",
    } <= set(counts)
    assert all("untagged" not in r.id for r in plan.resources)
    assert len(plan.describe()) == len(plan.resources)
    assert plan.describe()[0].startswith("instance i-")


def test_nuke_deletes_tagged_keeps_untagged_and_is_idempotent(aws: str) -> None:
    _world("meta", 1)
    _world("r1", 2)
    _world(None, 9)
    result = execute_nuke(plan_nuke(), wait_delay=0.1)
    assert result.failures == []
    assert result.remaining.is_empty, result.remaining.resources
    assert result.ok
    assert result.describe() == []
    assert not boto3.client("s3").list_buckets()["Buckets"][0]["Name"].startswith("bucket-1")
    _untagged_survive()
    second = plan_nuke()
    assert second.is_empty and second.errors == []
    assert execute_nuke(second).deleted == []


def test_run_id_filter_deletes_only_that_run(aws: str) -> None:
    _world("meta", 1)
    _world("r1", 2)
    _world("r2", 3)
    result = execute_nuke(plan_nuke(run_id="r1"), wait_delay=0.1)
    assert result.ok, (result.failures, result.remaining)
    assert {r.id for r in result.deleted if r.kind == "bucket"} == {"bucket-2-r1"}
    left = plan_nuke()
    assert {r.id for r in left.of_kind("bucket")} == {"bucket-1-meta", "bucket-3-r2"}
    assert len(left.of_kind("vpc")) == 2
    assert len(left.of_kind("instance")) == 4
    assert plan_nuke(run_id="r1").is_empty


def test_cli_sweeps_the_region_the_run_used(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_DEFAULT_REGION (another tool's setting, us-east-1 here) once won over the region
    recorded with the run's stacks, and nuke swept a region the run never touched."""
    import json
    import subprocess
    import sys

    import boto3

    ec2: Any = boto3.client("ec2", region_name="eu-west-1")  # tags built as plain dicts
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=_spec("vpc", "4242"))
    vpc_id = vpc["Vpc"]["VpcId"]
    stack = tmp_path / "home" / "terraform" / "default" / "runs" / "4242" / "aws"
    stack.mkdir(parents=True)
    (stack / "vars.json").write_text(json.dumps({"region": "eu-west-1", "run_id": "4242"}))
    monkeypatch.setenv("CLOUDBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLOUDBENCH_AWS_REGION", raising=False)
    out = subprocess.run(
        [sys.executable, "-m", "cloudbench", "nuke", "--provider", "aws", "--run-id", "4242"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert f"vpc {vpc_id}" in out.stdout, out.stdout + out.stderr
    assert "(AWS region eu-west-1)" in out.stdout
    assert "nothing removed" in out.stdout  # not a terminal, no --yes: listed only


@pytest.mark.parametrize("recorded", [True, False])
def test_cli_sweeps_the_meta_region_not_aws_default_region(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: bool
) -> None:
    """The command a run prints at its end (`cloudbench nuke --provider aws`, its region
    given or not) sweeps the run's region: the meta stack's recorded one, else
    CLOUDBENCH_AWS_REGION; never AWS_DEFAULT_REGION (us-east-1 here), another tool's."""
    import json
    import subprocess
    import sys

    import boto3

    ec2: Any = boto3.client("ec2", region_name="eu-west-1")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16", TagSpecifications=_spec("vpc", "meta"))
    vpc_id = vpc["Vpc"]["VpcId"]
    elsewhere: Any = boto3.client("ec2", region_name=REGION)
    elsewhere.create_vpc(CidrBlock="10.7.0.0/16", TagSpecifications=_spec("vpc", "meta"))
    home = tmp_path / "home"
    meta = home / "terraform" / "default" / "meta"
    meta.mkdir(parents=True)
    if recorded:
        (meta / "vars.json").write_text(json.dumps({"region": "eu-west-1"}))
        monkeypatch.delenv("CLOUDBENCH_AWS_REGION", raising=False)
    else:
        monkeypatch.setenv("CLOUDBENCH_AWS_REGION", "eu-west-1")
    monkeypatch.setenv("CLOUDBENCH_HOME", str(home))
    command = [sys.executable, "-m", "cloudbench", "nuke", "--provider", "aws"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert "(AWS region eu-west-1)" in out.stdout, out.stdout + out.stderr
    assert f"vpc {vpc_id}" in out.stdout
    assert "(AWS region us-east-1)" not in out.stdout


def test_run_id_revokes_that_runs_nat_entry_and_keeps_the_meta_group(aws: str) -> None:
    """An Azure run's NAT entry (the master's rule in the meta deployment's group) outlived
    a master that died, admitting an address Azure may give to someone else: `nuke --run-id`
    revokes that run's entry; the group, another run's entry and rules that are no run's
    stay (the meta deployment is not the run's)."""
    from cloudbench.master.providers.allowlist import AllowList

    ec2: Any = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16", TagSpecifications=_spec("vpc", "meta"))
    group = ec2.create_security_group(
        GroupName="cloudbench-runner-nat",
        Description="Azure runners' NAT addresses",
        VpcId=vpc["Vpc"]["VpcId"],
        TagSpecifications=_spec("security-group", "meta"),
    )["GroupId"]
    operator = {"CidrIp": "192.0.2.9/32", "Description": "operator"}
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [operator]}],
    )
    AllowList(REGION, group).allow(7, "198.51.100.23", 8000)
    AllowList(REGION, group).allow(8, "192.0.2.44", 8000)

    plan = plan_nuke(run_id="7")
    assert [(r.kind, r.id) for r in plan.resources] == [
        ("security-group-rule", f"{group}:tcp:8000:8000:198.51.100.23/32")
    ]
    result = execute_nuke(plan, wait_delay=0.1)
    assert result.ok, (result.failures, result.remaining)
    (found,) = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    left = {(r["CidrIp"], p["FromPort"]) for p in found["IpPermissions"] for r in p["IpRanges"]}
    assert left == {("192.0.2.9/32", 22), ("192.0.2.44/32", 8000)}
    assert plan_nuke(run_id="7").is_empty
    # Everything at once deletes the group itself, its rules with it: no rule is listed.
    assert {r.kind for r in plan_nuke().resources} == {"vpc", "security-group"}

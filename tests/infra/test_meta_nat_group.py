"""The meta stack's runner_nat group keeps the entries the master adds (issue 25 item 9).

The master admits each run's Azure NAT address with boto3 in a security group the meta
stack makes without ingress rules, and meta is re-applied on every run: this checks, with
the real `terraform` and the real AWS provider (the machine's filesystem mirror) against
moto's server, that a re-apply and a plan of that group leave such an entry alone and that
the group allows no egress. Only that group (and its VPC) is applied (`-target`): the rest
of meta needs the AWS twin (tests/twin/test_e2e.py). No twin lock: no VMs, one small apply.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3

from cloudbench.master.providers.allowlist import AllowList
from cloudbench.platform.tls import make_certificate
from cloudbench.protocol.marks import nat_rule_description as description
from tests.infra.test_boot_reporting import moto as moto
from tests.twin.core import find_mirror

META = Path(__file__).resolve().parents[2] / "infrastructure" / "meta"
TARGET = "-target=aws_security_group.runner_nat"


def _terraform(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["terraform", *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )


def _env(tmp: Path, moto: str) -> dict[str, str]:
    rc = tmp / "terraform.rc"
    rc.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{find_mirror()}"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n'
    )
    tf_vars = {
        "region": "us-east-1",
        "allowed_http_cidrs": '["203.0.113.0/24"]',
        "bastion_ssh_cidr": "203.0.113.7/32",
        "ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake test@example",
        "orchestrator_wheel": "cloudbench-0.1.0-py3-none-any.whl",
        "suffix": "abcd1234",
        "admin_token": "a" * 40,
        "runner_token": "r" * 40,
        "postgres_password": "p" * 32,
    }
    cert, key = make_certificate()  # the deployment's certificate, as the master makes it
    tf_vars |= {"tls_cert": cert, "tls_key": key}
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "TF_CLI_CONFIG_FILE": str(rc),
        "CHECKPOINT_DISABLE": "1",
        "AWS_ENDPOINT_URL": moto,
        "AWS_ACCESS_KEY_ID": "fake",
        "AWS_SECRET_ACCESS_KEY": "fake",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        **{f"TF_VAR_{k}": v for k, v in tf_vars.items()},
    }


def _group(ec2: Any) -> dict[str, Any]:
    found = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["cloudbench-runner-nat"]}]
    )["SecurityGroups"]
    assert len(found) == 1, found
    return dict(found[0])


def test_reapplying_meta_keeps_a_runs_nat_entry_and_the_group_has_no_egress(
    tmp_path: Path, moto: str, monkeypatch: Any
) -> None:
    workdir = tmp_path / "meta"
    shutil.copytree(META, workdir)
    env = _env(tmp_path, moto)
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, env[key])
    done = _terraform(workdir, env, "init", "-input=false", "-no-color")
    assert done.returncode == 0, done.stdout + done.stderr
    apply = ("apply", "-auto-approve", "-input=false", "-no-color", TARGET)
    done = _terraform(workdir, env, *apply)
    assert done.returncode == 0, done.stdout + done.stderr

    ec2 = boto3.client("ec2", region_name="us-east-1")
    group = _group(ec2)
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == [], group
    AllowList("us-east-1", group["GroupId"]).allow(7, "198.51.100.23", 8000)

    # The next run's meta apply: no change planned for the group, the entry still there.
    plan = _terraform(workdir, env, "plan", "-detailed-exitcode", "-no-color", TARGET)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    done = _terraform(workdir, env, *apply)
    assert done.returncode == 0, done.stdout + done.stderr
    ranges = [r for p in _group(ec2)["IpPermissions"] for r in p["IpRanges"]]
    assert ranges == [{"CidrIp": "198.51.100.23/32", "Description": description(7)}], ranges

"""Azure runners' allow-list entry at the orchestrator (issue 25 item 9), against moto's
server over HTTP (AWS cannot be reached from here), and the order the master keeps:
the azure stack without VMs, then the NAT address admitted, then the VMs.

The stack in the ordering test is a recording stand-in (no azurerm provider on this
machine: the real stack cannot be applied); the security group and its rules are moto's.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from rich.console import Console

from cloudbench.master.providers import driver as stack_driver
from cloudbench.master.providers.allowlist import AllowList, url_port
from cloudbench.master.providers.base import ProviderError
from cloudbench.master.providers.driver import StackDriver
from cloudbench.master.stacks import MetaOutputs
from cloudbench.protocol.marks import nat_rule_description as description
from tests.infra.test_boot_reporting import moto as moto

REGION = "eu-west-1"


@pytest.fixture
def ec2(moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fake")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield boto3.client("ec2", region_name=REGION)


def _group(ec2: Any) -> str:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    made = ec2.create_security_group(GroupName="cb-runner-nat", Description="t", VpcId=vpc)
    return str(made["GroupId"])


def _rules(ec2: Any, group: str) -> list[tuple[str, int, str]]:
    found = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    return sorted(
        (r["CidrIp"], p["FromPort"], r.get("Description", ""))
        for p in found["IpPermissions"]
        for r in p.get("IpRanges", [])
    )


def test_a_run_admits_its_nat_address_on_the_url_port_and_revokes_only_its_own(
    ec2: Any,
) -> None:
    group = _group(ec2)
    allow = AllowList(REGION, group)
    assert allow.allow(7, "198.51.100.23", 8000) == "198.51.100.23/32"
    assert allow.allow(7, "198.51.100.23", 8000) == "198.51.100.23/32"  # again: no error
    allow.allow(8, "192.0.2.44", 443)
    assert _rules(ec2, group) == [
        ("192.0.2.44/32", 443, description(8)),
        ("198.51.100.23/32", 8000, description(7)),
    ]
    assert allow.revoke(7) == ["198.51.100.23/32"]
    assert _rules(ec2, group) == [("192.0.2.44/32", 443, description(8))]
    assert allow.revoke(7) == []


def test_bad_nat_address_and_unknown_group_are_one_line(ec2: Any) -> None:
    with pytest.raises(ProviderError, match="nat_public_ip '' is not an IPv4 address"):
        AllowList(REGION, _group(ec2)).allow(7, "", 8000)
    with pytest.raises(ProviderError, match="security group sg-0000000000000dead: cannot admit"):
        AllowList(REGION, "sg-0000000000000dead").allow(7, "198.51.100.23", 8000)
    assert AllowList(REGION, "sg-0000000000000dead").revoke(7) == []  # logged, not raised


def test_url_port() -> None:
    assert url_port("http://203.0.113.5:8000") == 8000
    assert url_port("https://bench.example.org") == 443
    assert url_port("http://bench.example.org/") == 80


class _Stack:
    """The azure stack as the master drives it; each apply notes the rules at that time."""

    name = "azure"

    def __init__(self, tmp: Path, ec2: Any, group: str) -> None:
        self.workdir, self.log_path = tmp, tmp / "azure.log"
        self.variables: dict[str, Any] = {"run_id": "7"}
        self.ec2, self.group = ec2, group
        self.applies: list[tuple[Any, list[tuple[str, int, str]]]] = []

    def prepare(self, module: Path) -> None:
        pass

    def apply(self) -> None:
        self.applies.append((self.variables.get("launch_vms"), _rules(self.ec2, self.group)))

    def terraform(self) -> Any:
        stack = self

        class _Tf:
            def output(self) -> dict[str, Any]:
                return {"nat_public_ip": "198.51.100.23", "instances": {}} if stack.applies else {}

        return _Tf()


class _View:
    def set(self, name: str, text: str) -> None:
        pass


class _Meta:
    def __init__(self, group: str) -> None:
        self.settings = None
        url = "http://203.0.113.5:8000"
        self.outputs = MetaOutputs(
            url,
            "subnet-1",
            REGION,
            admin_token="a" * 40,
            runner_token="r" * 40,
            runner_nat_group=group,
        )
        self.failed = False


def _provider(tmp_path: Path, group: str, monkeypatch: pytest.MonkeyPatch) -> StackDriver:
    monkeypatch.setattr(stack_driver, "module_dir", lambda settings, name: tmp_path)
    console = Console(file=io.StringIO())
    provider = StackDriver(_Meta(group), console, tmp_path)  # type: ignore[arg-type]
    provider.run_id = 7
    return provider


def test_the_nat_address_is_admitted_after_the_network_and_before_the_vms(
    ec2: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = _group(ec2)
    provider = _provider(tmp_path, group, monkeypatch)
    stack = _Stack(tmp_path, ec2, group)
    assert provider._one(_View(), stack, "apply") is None  # type: ignore[arg-type]
    rule = ("198.51.100.23/32", 8000, description(7))
    assert stack.applies == [(False, []), (True, [rule])]
    provider.stacks = [stack]  # type: ignore[list-item]
    monkeypatch.setattr(provider, "_each", lambda action, skip=None: [])
    provider.stop()
    assert _rules(ec2, group) == []


def test_an_old_meta_without_the_group_stops_before_any_azure_apply(
    ec2: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = _provider(tmp_path, "", monkeypatch)
    stack = _Stack(tmp_path, ec2, _group(ec2))
    error = provider._one(_View(), stack, "apply")  # type: ignore[arg-type]
    assert error is not None and "no runner_nat_security_group_id output" in str(error)
    assert stack.applies == []

"""The twin's moto layer (tests/twin/calls.py): a retry of a changing call moto already
answered gets that answer again instead of being carried out twice.

Real moto server (the twin's, in this process) and boto3; the retry is made by sending
a second call with the first one's `amz-sdk-invocation-id`, as the SDK does on a retry.
No podman, no Terraform.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from tests.pg import free_port
from tests.twin import calls


@pytest.fixture
def ec2(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    log = tmp_path / "moto-requests.log"
    calls.install(log)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        client = boto3.client(
            "ec2",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="twin",
            aws_secret_access_key="twin",
        )
        yield client, log
    finally:
        server.stop()
        calls.uninstall()


def _same_invocation(client: Any, invocation: str) -> None:
    def send(request: Any, **_: Any) -> None:
        request.headers["amz-sdk-invocation-id"] = invocation
        request.headers["amz-sdk-request"] = "attempt=2; max=25"

    client.meta.events.register_first("before-send.ec2.*", send, unique_id="twin-retry")


def test_a_retried_change_is_answered_once_and_logged(ec2: tuple[Any, Path]) -> None:
    client, log = ec2
    vpc = client.create_vpc(CidrBlock="10.97.0.0/16")["Vpc"]["VpcId"]
    first = client.create_security_group(GroupName="web", Description="d", VpcId=vpc)
    # A second call with the same name and a new invocation is refused, as on EC2 ...
    with pytest.raises(ClientError, match=r"InvalidGroup\.Duplicate"):
        client.create_security_group(GroupName="web", Description="d", VpcId=vpc)
    # ... but a retry of one call moto answered gets that answer again.
    _same_invocation(client, "4b1c0ffe-0000-4000-8000-000000000001")
    made = client.create_security_group(GroupName="db", Description="d", VpcId=vpc)
    again = client.create_security_group(GroupName="db", Description="d", VpcId=vpc)
    assert again["GroupId"] == made["GroupId"] != first["GroupId"]
    groups = client.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    names = sorted(g["GroupName"] for g in groups["SecurityGroups"])
    assert names == ["db", "default", "web"], names

    lines = log.read_text().splitlines()
    creates = [line for line in lines if " CreateSecurityGroup GroupName=db " in line]
    assert len(creates) == 2 and creates[1].endswith("replayed"), lines
    assert "[attempt=2; max=25] -> 200" in creates[1], lines
    assert any("GroupName=web" in line and "-> 400" in line for line in lines), lines

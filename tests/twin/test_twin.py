"""The AWS twin itself: VMs boot from user-data, IMDSv2 needs its token, power-off applies
the instance's shutdown behaviour, console output is the VM's, and the fault options.

Real moto (in the twin's process), real podman containers from the twin's VM image,
real IMDS server in each VM's own network namespace. No Terraform here (test_e2e.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.containers import twin_vm_image
from tests.twin.core import Faults, Twin

USER_DATA = """#!/bin/bash
imds=http://169.254.169.254
echo "no-token: $(curl -s -o /dev/null -w '%{http_code}' $imds/latest/meta-data/instance-id)"
token=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $imds/latest/api/token)
get() { curl -s -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/$1"; }
echo "type: $(get instance-type) zone: $(get placement/availability-zone) ami: $(get ami-id)"
apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null && echo "apt: ok"
shutdown -h now done
"""
# 256 KB through the serial port (its buffer holds far less: the writer waits for the
# reader), a last line, and at once the power off: that line is on the console.
LAST_WORDS = """#!/bin/bash
head -c 262144 /dev/zero | tr '\\0' x | fold -w 127 >/dev/ttyS0
echo "last words before the power off" >/dev/ttyS0
poweroff
"""


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Twin]:
    faults = Faults(kill_vm={"doomed": 3.0}, no_boot={"stuck"})
    twin_vm_image()
    twin = Twin(tmp_path / "twin", faults)
    saved = dict(os.environ)
    try:
        twin.start()
        os.environ.update(twin.env())
        yield twin
    finally:
        os.environ.clear()
        os.environ.update(saved)
        twin.stop()


def _launch(ec2: object, subnet: str, alias: str, user_data: str, behaviour: str) -> str:
    response = ec2.run_instances(  # type: ignore[attr-defined]
        ImageId="ami-0a1b2c3d4e5f60001",
        MinCount=1,
        MaxCount=1,
        InstanceType="c7i.large",
        SubnetId=subnet,
        UserData=user_data,
        InstanceInitiatedShutdownBehavior=behaviour,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Alias", "Value": alias}]}
        ],
    )
    return str(response["Instances"][0]["InstanceId"])


def _state(ec2: object, iid: str) -> str:
    found = ec2.describe_instances(InstanceIds=[iid])  # type: ignore[attr-defined]
    return str(found["Reservations"][0]["Instances"][0]["State"]["Name"])


def _wait_state(ec2: object, iid: str, wanted: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while _state(ec2, iid) != wanted:
        assert time.monotonic() < deadline, f"{iid} is {_state(ec2, iid)}, not {wanted}"
        time.sleep(0.5)


def test_vms_boot_power_off_and_faults(twin: Twin) -> None:
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=str(twin.vpc))["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(
        VpcId=vpc, CidrBlock=str(twin.subnet), AvailabilityZone="us-east-1a"
    )["Subnet"]["SubnetId"]
    ok = _launch(ec2, subnet, "ok", USER_DATA, "terminate")
    stopper = _launch(ec2, subnet, "ok", LAST_WORDS, "stop")
    doomed = _launch(ec2, subnet, "doomed", "#!/bin/bash\nsleep 600\n", "terminate")
    stuck = _launch(ec2, subnet, "stuck", "#!/bin/bash\nshutdown -h now\n", "terminate")

    _wait_state(ec2, ok, "terminated")
    console = ec2.get_console_output(InstanceId=ok)["Output"]  # botocore decodes the base64
    assert "no-token: 401" in console, console
    assert "type: c7i.large zone: us-east-1a ami: ami-0a1b2c3d4e5f60001" in console, console
    assert "apt: ok" in console and "shutdown: done" in console, console
    _wait_state(ec2, stopper, "stopped")
    console = ec2.get_console_output(InstanceId=stopper)["Output"]
    assert "last words before the power off" in console, console[-300:]
    _wait_state(ec2, doomed, "terminated")  # --kill-vm: gone after 3 s, as if reclaimed
    assert "user-data exited" not in (twin.state_dir / "vms" / doomed / "console.log").read_text()
    # --no-boot: never leaves pending, and nothing was started for it.
    assert _state(ec2, stuck) == "pending"
    assert not (twin.state_dir / "vms" / stuck).exists()

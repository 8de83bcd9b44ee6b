"""What is left in an AWS account (the twin's moto): everything `cloudbench nuke` must
remove. `python -m tests.twin.inventory` prints it as JSON (empty lists: nothing left)."""

from __future__ import annotations

import json
import sys
from typing import Any

import boto3


def inventory(region: str = "us-east-1") -> dict[str, list[str]]:
    ec2 = boto3.client("ec2", region_name=region)
    live = ("pending", "running", "stopping", "stopped", "shutting-down")
    reservations = ec2.describe_instances()["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    subnets = ec2.describe_subnets()["Subnets"]
    gone = {i["InstanceId"] for i in instances if i["State"]["Name"] == "terminated"}
    vpcs = ec2.describe_vpcs()["Vpcs"]
    defaults = {v["VpcId"] for v in vpcs if v.get("IsDefault")}
    out: dict[str, list[str]] = {
        "instances": [i["InstanceId"] for i in instances if i["State"]["Name"] in live],
        "vpcs": [v["VpcId"] for v in vpcs if not v.get("IsDefault")],
        "subnets": [s["SubnetId"] for s in subnets if not s.get("DefaultForAz")],
        "internet_gateways": [
            g["InternetGatewayId"]
            for g in ec2.describe_internet_gateways()["InternetGateways"]
            if not {a["VpcId"] for a in g.get("Attachments", [])} & defaults
        ],
        "security_groups": [
            g["GroupId"]
            for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["GroupName"] != "default"
        ],
        "addresses": [a.get("AllocationId", "") for a in ec2.describe_addresses()["Addresses"]],
        # A terminated instance's primary interface goes with it on EC2 (moto keeps it).
        "network_interfaces": [
            n["NetworkInterfaceId"]
            for n in ec2.describe_network_interfaces()["NetworkInterfaces"]
            if n.get("Attachment", {}).get("InstanceId") not in gone
        ],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
        "buckets": [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]],
        "ssm_parameters": [p["Name"] for p in _parameters(region)],
    }
    iam = boto3.client("iam")
    out["iam_roles"] = [r["RoleName"] for r in iam.list_roles()["Roles"] if _ours(r)]
    out["instance_profiles"] = [
        p["InstanceProfileName"]
        for p in iam.list_instance_profiles()["InstanceProfiles"]
        if _ours(p)
    ]
    return out


def _ours(resource: dict[str, Any]) -> bool:
    # moto ships no roles of its own except service-linked ones under /aws-service-role/.
    return not str(resource.get("Path", "/")).startswith("/aws-service-role/")


def _parameters(region: str) -> list[dict[str, Any]]:
    ssm = boto3.client("ssm", region_name=region)
    pages = ssm.get_paginator("describe_parameters").paginate()
    return [p for page in pages for p in page["Parameters"]]


if __name__ == "__main__":
    json.dump(inventory(), sys.stdout, indent=1)
    sys.stdout.write("\n")

"""Find the AWS resources that carry cloudbench's tags (Project, optionally RunId).

Each lister takes the clients and the tag selector and returns `Resource`s; they raise
botocore errors, which the caller records per kind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from cloudbench.protocol.marks import nat_rule_description

logger = logging.getLogger(__name__)

PROJECT_TAG = "Project"
PROJECT_VALUE = "cloudbench"
RUN_TAG = "RunId"
# Our IAM roles and instance profiles live under this path (see infrastructure/), which
# narrows the listing before the per-item tag look-ups.
IAM_PATH = "/cloudbench/"
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


@dataclass(frozen=True)
class Resource:
    """One AWS resource to delete: its kind (see aws.DELETE_ORDER), id and a display name."""

    kind: str
    id: str
    name: str = ""


@dataclass(frozen=True)
class Clients:
    """boto3 clients for one region (IAM and the S3 listing are global)."""

    ec2: Any
    s3: Any
    ssm: Any
    iam: Any
    region: str


@dataclass(frozen=True)
class Selector:
    """Which tags make a resource ours."""

    run_id: str | None = None
    wanted: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        wanted = {PROJECT_TAG: PROJECT_VALUE}
        if self.run_id is not None:
            wanted[RUN_TAG] = self.run_id
        object.__setattr__(self, "wanted", wanted)

    def ec2_filters(self) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{k}", "Values": [v]} for k, v in self.wanted.items()]

    def matches(self, tags: Iterable[dict[str, str]] | None) -> bool:
        have = {t.get("Key"): t.get("Value") for t in tags or []}
        return all(have.get(k) == v for k, v in self.wanted.items())


def _name(tags: Iterable[dict[str, str]] | None) -> str:
    return next((t["Value"] for t in tags or [] if t.get("Key") == "Name"), "")


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def list_instances(c: Clients, sel: Selector) -> list[Resource]:
    filters = [*sel.ec2_filters(), {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
    return [
        Resource("instance", inst["InstanceId"], _name(inst.get("Tags")))
        for reservation in _pages(c.ec2, "describe_instances", "Reservations", Filters=filters)
        for inst in reservation.get("Instances", [])
    ]


def list_network_interfaces(c: Clients, sel: Selector) -> list[Resource]:
    enis = _pages(
        c.ec2, "describe_network_interfaces", "NetworkInterfaces", Filters=sel.ec2_filters()
    )
    return [
        Resource("network-interface", eni["NetworkInterfaceId"], _name(eni.get("TagSet")))
        for eni in enis
    ]


def list_elastic_ips(c: Clients, sel: Selector) -> list[Resource]:
    addresses = c.ec2.describe_addresses(Filters=sel.ec2_filters()).get("Addresses", [])
    return [
        Resource("elastic-ip", a["AllocationId"], a.get("PublicIp", ""))
        for a in addresses
        if "AllocationId" in a
    ]


def list_security_groups(c: Clients, sel: Selector) -> list[Resource]:
    groups = _pages(c.ec2, "describe_security_groups", "SecurityGroups", Filters=sel.ec2_filters())
    # A VPC's default group cannot be deleted; it goes with its VPC.
    return [
        Resource("security-group", g["GroupId"], g.get("GroupName", ""))
        for g in groups
        if g.get("GroupName") != "default"
    ]


def list_run_rules(c: Clients, sel: Selector) -> list[Resource]:
    """A run's ingress rules in cloudbench's groups, by their description (the Azure
    runners' NAT entry): the groups are the meta deployment's, not the run's, and stay.
    A sweep of everything deletes the groups, rules and all: nothing to list then."""
    if sel.run_id is None:
        return []
    wanted = nat_rule_description(sel.run_id)
    groups = _pages(
        c.ec2, "describe_security_groups", "SecurityGroups", Filters=Selector().ec2_filters()
    )
    return [
        Resource("security-group-rule", rule_id(g["GroupId"], p, r["CidrIp"]), wanted)
        for g in groups
        for p in g.get("IpPermissions", [])
        for r in p.get("IpRanges", [])
        if r.get("Description") == wanted
    ]


def rule_id(group_id: str, permission: dict[str, Any], cidr: str) -> str:
    """`sg-…:tcp:8000:8000:203.0.113.7/32` (IPv4 ranges: no colon in the CIDR): enough
    to revoke exactly that rule."""
    low, high = permission.get("FromPort", -1), permission.get("ToPort", -1)
    return f"{group_id}:{permission['IpProtocol']}:{low}:{high}:{cidr}"


def list_subnets(c: Clients, sel: Selector) -> list[Resource]:
    subnets = _pages(c.ec2, "describe_subnets", "Subnets", Filters=sel.ec2_filters())
    return [Resource("subnet", s["SubnetId"], _name(s.get("Tags"))) for s in subnets]


def list_internet_gateways(c: Clients, sel: Selector) -> list[Resource]:
    igws = _pages(
        c.ec2, "describe_internet_gateways", "InternetGateways", Filters=sel.ec2_filters()
    )
    return [
        Resource("internet-gateway", g["InternetGatewayId"], _name(g.get("Tags"))) for g in igws
    ]


def list_route_tables(c: Clients, sel: Selector) -> list[Resource]:
    tables = _pages(c.ec2, "describe_route_tables", "RouteTables", Filters=sel.ec2_filters())
    # The main table goes with its VPC and cannot be deleted on its own.
    return [
        Resource("route-table", t["RouteTableId"], _name(t.get("Tags")))
        for t in tables
        if not any(a.get("Main") for a in t.get("Associations", []))
    ]


def list_vpcs(c: Clients, sel: Selector) -> list[Resource]:
    vpcs = _pages(c.ec2, "describe_vpcs", "Vpcs", Filters=sel.ec2_filters())
    return [Resource("vpc", v["VpcId"], _name(v.get("Tags"))) for v in vpcs]


def list_key_pairs(c: Clients, sel: Selector) -> list[Resource]:
    pairs = c.ec2.describe_key_pairs(Filters=sel.ec2_filters()).get("KeyPairs", [])
    return [Resource("key-pair", p["KeyPairId"], p.get("KeyName", "")) for p in pairs]


def _bucket_tags(c: Clients, bucket: str) -> list[dict[str, str]]:
    try:
        tag_set: list[dict[str, str]] = c.s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchTagSet":
            return []
        raise
    return tag_set


def _bucket_region(c: Clients, bucket: str) -> str:
    location = c.s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    # us-east-1 reports no constraint; "EU" is the legacy name of eu-west-1.
    aliases = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}
    return str(aliases.get(location, location))


def list_buckets(c: Clients, sel: Selector) -> list[Resource]:
    found = []
    for bucket in c.s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        try:
            if sel.matches(_bucket_tags(c, name)) and _bucket_region(c, name) == c.region:
                found.append(Resource("bucket", name, name))
        except ClientError as exc:
            # Buckets of other tools may deny us; they are not ours to judge.
            logger.debug("skipping bucket %s: %s", name, exc)
    return found


def list_ssm_parameters(c: Clients, sel: Selector) -> list[Resource]:
    filters = [
        {"Key": f"tag:{k}", "Option": "Equals", "Values": [v]} for k, v in sel.wanted.items()
    ]
    params = _pages(c.ssm, "describe_parameters", "Parameters", ParameterFilters=filters)
    return [Resource("ssm-parameter", p["Name"], p["Name"]) for p in params]


def list_instance_profiles(c: Clients, sel: Selector) -> list[Resource]:
    found = []
    for p in _pages(c.iam, "list_instance_profiles", "InstanceProfiles", PathPrefix=IAM_PATH):
        name = p["InstanceProfileName"]
        # GetInstanceProfile carries the tags (listing does not); one call per profile.
        profile = c.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        tags = profile.get("Tags", [])
        if sel.matches(tags):
            found.append(Resource("instance-profile", name, name))
    return found


def list_iam_roles(c: Clients, sel: Selector) -> list[Resource]:
    found = []
    for role in _pages(c.iam, "list_roles", "Roles", PathPrefix=IAM_PATH):
        name = role["RoleName"]
        if sel.matches(c.iam.list_role_tags(RoleName=name).get("Tags", [])):
            found.append(Resource("iam-role", name, name))
    return found

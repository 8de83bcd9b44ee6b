"""Sweep away every AWS resource tagged as cloudbench's, optionally only one run's.

Two steps so the CLI can show what will go and ask first:

    plan = plan_nuke(region="us-east-1", run_id=None)   # lists, changes nothing
    result = execute_nuke(plan)                          # deletes, then lists again

Deletion follows dependency order and carries on past failures; `result.remaining` is a
fresh listing, so a caller can tell exactly what survived. The clients come from boto3's
normal configuration chain (credentials, region, and AWS_ENDPOINT_URL for emulators).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from cloudbench.nuke import aws_deleting as d
from cloudbench.nuke import aws_listing as ls
from cloudbench.nuke.aws_listing import Clients, Resource, Selector

logger = logging.getLogger(__name__)

__all__ = ["NukeFailure", "NukePlan", "NukeResult", "Resource", "execute_nuke", "plan_nuke"]

# ResponseParserError is not a BotoCoreError: an endpoint answering garbage must not
# stop the sweep.
AwsError = (ClientError, BotoCoreError, ResponseParserError, RuntimeError)

# (kind, lister, deleter) in deletion order: dependants before what they depend on.
# Instances are special-cased (terminated together, then waited for).
Lister = Callable[[Clients, Selector], list[Resource]]
Deleter = Callable[[Clients, Resource], None]
STEPS: list[tuple[str, Lister, Deleter | None]] = [
    ("instance", ls.list_instances, None),
    ("network-interface", ls.list_network_interfaces, d.delete_network_interface),
    ("elastic-ip", ls.list_elastic_ips, d.release_elastic_ip),
    ("security-group-rule", ls.list_run_rules, d.revoke_rule),
    ("security-group", ls.list_security_groups, d.delete_security_group),
    ("subnet", ls.list_subnets, d.delete_subnet),
    ("internet-gateway", ls.list_internet_gateways, d.delete_internet_gateway),
    ("route-table", ls.list_route_tables, d.delete_route_table),
    ("vpc", ls.list_vpcs, d.delete_vpc),
    ("bucket", ls.list_buckets, d.delete_bucket),
    ("ssm-parameter", ls.list_ssm_parameters, d.delete_ssm_parameter),
    ("instance-profile", ls.list_instance_profiles, d.delete_instance_profile),
    ("iam-role", ls.list_iam_roles, d.delete_iam_role),
    ("key-pair", ls.list_key_pairs, d.delete_key_pair),
]
DELETE_ORDER = [kind for kind, _, _ in STEPS]


@dataclass
class NukePlan:
    """What a sweep would delete, in deletion order, plus the kinds it could not list."""

    region: str
    run_id: str | None
    resources: list[Resource] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.resources

    def of_kind(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.kind == kind]

    def describe(self) -> list[str]:
        """One line per resource (in deletion order), then one per listing failure."""
        lines = [f"{r.kind} {r.id} {r.name}".rstrip() for r in self.resources]
        return lines + [f"(could not list: {e})" for e in self.errors]

    def counts(self) -> dict[str, int]:
        """Number of resources per kind, only kinds that have some, in deletion order."""
        counts = {kind: len(self.of_kind(kind)) for kind in DELETE_ORDER}
        return {kind: n for kind, n in counts.items() if n}


@dataclass(frozen=True)
class NukeFailure:
    resource: Resource
    message: str


@dataclass
class NukeResult:
    deleted: list[Resource]
    failures: list[NukeFailure]
    remaining: NukePlan

    def describe(self) -> list[str]:
        """Failures first, then what is still there."""
        lines = [f"failed: {f.resource.kind} {f.resource.id}: {f.message}" for f in self.failures]
        return lines + [f"remains: {line}" for line in self.remaining.describe()]

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing of ours is left (listing included)."""
        return not self.failures and self.remaining.is_empty and not self.remaining.errors


def make_clients(region: str | None = None, session: boto3.Session | None = None) -> Clients:
    """Clients for `region` (or the session's / environment's default region)."""
    session = session or boto3.Session()
    region = region or session.region_name
    if not region:
        raise ValueError("no AWS region: pass one or set AWS_REGION / AWS_DEFAULT_REGION")
    config = Config(retries={"max_attempts": 8, "mode": "standard"})

    def client(name: str) -> object:
        return session.client(name, region_name=region, config=config)  # type: ignore[call-overload]

    return Clients(
        ec2=client("ec2"), s3=client("s3"), ssm=client("ssm"), iam=client("iam"), region=region
    )


def plan_nuke(
    region: str | None = None,
    run_id: str | None = None,
    *,
    session: boto3.Session | None = None,
    clients: Clients | None = None,
) -> NukePlan:
    """List everything tagged Project=cloudbench (and RunId=run_id if given). Deletes nothing."""
    clients = clients or make_clients(region, session)
    selector = Selector(run_id)
    plan = NukePlan(region=clients.region, run_id=run_id)
    for kind, lister, _ in STEPS:
        try:
            plan.resources.extend(lister(clients, selector))
        except AwsError as exc:
            logger.warning("cannot list %s: %s", kind, exc)
            plan.errors.append(f"cannot list {kind}: {exc}")
    return plan


def execute_nuke(
    plan: NukePlan,
    *,
    session: boto3.Session | None = None,
    clients: Clients | None = None,
    wait_delay: float = 5.0,
    wait_attempts: int = 120,
) -> NukeResult:
    """Delete what `plan` lists in dependency order, then list again for what remains."""
    clients = clients or make_clients(plan.region, session)
    deleted: list[Resource] = []
    failures: list[NukeFailure] = []
    instances = plan.of_kind("instance")
    _terminate(clients, instances, wait_delay, wait_attempts, deleted, failures)
    _revoke_rules(clients, plan.of_kind("security-group"))
    for kind, _, deleter in STEPS:
        if deleter is None:
            continue
        for resource in plan.of_kind(kind):
            _delete_one(clients, resource, deleter, deleted, failures)
    remaining = plan_nuke(run_id=plan.run_id, clients=clients)
    return NukeResult(deleted=deleted, failures=failures, remaining=remaining)


def _delete_one(
    clients: Clients,
    resource: Resource,
    deleter: Deleter,
    deleted: list[Resource],
    failures: list[NukeFailure],
) -> None:
    try:
        deleter(clients, resource)
    except AwsError as exc:
        if not d.is_not_found(exc):
            logger.warning("cannot delete %s %s: %s", resource.kind, resource.id, exc)
            failures.append(NukeFailure(resource, str(exc)))
            return
    logger.info("deleted %s %s", resource.kind, resource.id)
    deleted.append(resource)


def _terminate(
    clients: Clients,
    instances: list[Resource],
    delay: float,
    attempts: int,
    deleted: list[Resource],
    failures: list[NukeFailure],
) -> None:
    if not instances:
        return
    try:
        d.terminate_instances(clients, [i.id for i in instances], delay, attempts)
    except AwsError as exc:  # WaiterError (timeout) is a BotoCoreError too
        logger.warning("terminating instances failed: %s", exc)
        failures.extend(NukeFailure(i, f"terminate: {exc}") for i in instances)
        return
    deleted.extend(instances)


def _revoke_rules(clients: Clients, groups: list[Resource]) -> None:
    try:
        d.revoke_security_group_rules(clients, groups)
    except AwsError as exc:
        # Not a failure by itself: deleting a group still blocked by a rule reports one.
        logger.warning("revoking security group rules failed: %s", exc)

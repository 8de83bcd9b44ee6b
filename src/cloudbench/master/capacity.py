"""Before any AWS apply: the zone each instance type goes to, and whether the vCPUs fit.

EC2 does not offer every type in every zone; an instance launched in a zone that lacks
its type fails the whole `terraform apply`. `DescribeInstanceTypeOfferings` (location
type `availability-zone`) says where each type is offered; each type goes to the first
such zone, the meta stack's own zone order first (`<region>a`, `b`, `c`, then the rest),
and the meta stack has one public subnet per zone (`zone_subnets` output).

The run's vCPUs (instances x `DescribeInstanceTypes` default vCPUs, plus the meta
stack's two instances when it is not deployed yet) and those running in the region now
are checked against each EC2 vCPU quota they fall under (Service Quotas; applied value,
else the default). A quota the account cannot read is reported as not checked, never
as passed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cloudbench.protocol import RunSpec

logger = logging.getLogger(__name__)

META_TYPES = ("t3.small", "t3.micro")  # infrastructure/meta: orchestrator, bastion
PREFERRED = ("a", "b", "c")  # the meta stack's zone allow-list, in its order
# On-demand vCPU quotas of EC2 by instance family (Service Quotas, service code ec2).
STANDARD = ("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances")
QUOTAS: tuple[tuple[str, tuple[str, str]], ...] = (
    ("hpc", ("L-F7808C92", "Running On-Demand HPC instances")),
    ("inf", ("L-1945791B", "Running On-Demand Inf instances")),
    ("trn", ("L-2C3B7624", "Running On-Demand Trn instances")),
    ("dl", ("L-6E869C2A", "Running On-Demand DL instances")),
    ("vt", ("L-DB2E81BA", "Running On-Demand G and VT instances")),
    ("mac", ("", "")),  # dedicated hosts, not a vCPU quota
    ("u", ("L-43DA4232", "Running On-Demand High Memory instances")),
    ("f", ("L-74FC7D96", "Running On-Demand F instances")),
    ("g", ("L-DB2E81BA", "Running On-Demand G and VT instances")),
    ("p", ("L-417A185B", "Running On-Demand P instances")),
    ("x", ("L-7295265B", "Running On-Demand X instances")),
)


# Spot vCPUs count against their own quotas; only the standard families' is checked here
# (G/VT, P, X, F, Inf, Trn, DL spot quotas are not: no line, nothing refused).
SPOT_STANDARD = ("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests")


class CapacityError(RuntimeError):
    """AWS could not be asked at all; the message names the region and the cause."""


def quota_of(instance_type: str, spot: bool = False) -> tuple[str, str]:
    """(quota code, quota name) of the type's on-demand (or spot) vCPUs; ("", "") for
    none checked."""
    family = instance_type.split(".")[0].lower()
    for prefix, quota in QUOTAS:
        if family.startswith(prefix):
            return ("", "") if spot else quota
    return SPOT_STANDARD if spot else STANDARD


@dataclass(frozen=True)
class QuotaCheck:
    code: str
    name: str
    limit: float | None  # None: could not be read
    in_use: int
    needed: int
    types: tuple[str, ...]
    why_unread: str = ""

    @property
    def ok(self) -> bool:
        return self.limit is None or self.in_use + self.needed <= self.limit

    def line(self, region: str) -> str:
        head = f"quota {self.code} ({self.name} vCPUs) in {region}"
        if self.limit is None:
            return f"{head}: not checked ({self.why_unread}); this run needs {self.needed}"
        used = f"{self.in_use} in use + {self.needed} for this run = {self.in_use + self.needed}"
        if self.ok:
            return f"{head}: {used} of {self.limit:g}: ok"
        return (
            f"{head} is {self.limit:g}; {used} ({', '.join(self.types)}); lower the instance "
            "counts or request more: aws service-quotas request-service-quota-increase "
            f"--service-code ec2 --quota-code {self.code} "
            f"--desired-value {self.in_use + self.needed} --region {region}"
        )


@dataclass
class CapacityPlan:
    region: str
    zones: dict[str, str] = field(default_factory=dict)  # instance type -> zone
    vcpus: dict[str, int] = field(default_factory=dict)
    quotas: list[QuotaCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # each refuses the run

    def describe(self) -> list[str]:
        rows = [f"aws zone for {t}: {z}" for t, z in self.zones.items()]
        rows += [f"aws {q.line(self.region)}" for q in self.quotas if q.ok]
        return rows + [f"refused: aws {p}" for p in self.problems]


def aws_wanted(spec: RunSpec) -> list[tuple[str, int, bool]]:
    """(instance type, instances, spot) per AWS entry of the config."""
    return [
        (s.instance_type, spec.counts(s).instances, spec.capacity_of("aws", s) == "spot")
        for s in spec.aws
    ]


def check_aws(
    spec: RunSpec, region: str, *, meta_pending: bool, own_run: int | None = None
) -> CapacityPlan:
    """The plan, or CapacityError naming each type or quota that refuses the run."""
    try:
        plan = plan_capacity(aws_wanted(spec), region, meta_pending=meta_pending, own_run=own_run)
    except CapacityError as exc:
        raise CapacityError(f"aws: {exc}") from None
    if plan.problems:
        raise CapacityError("\n".join(f"aws: {p}" for p in plan.problems))
    return plan


def subnet_for(zone: str | None, subnets: dict[str, str], default: str, instance_type: str) -> str:
    """The meta deployment's subnet in the zone chosen for the type."""
    if zone is None:
        return default
    if not subnets:  # a deployment from before zone subnets, reused as it is
        logger.warning(
            "the meta deployment has no zone_subnets output: %s goes to subnet %s "
            "(apply it again: run without --reuse-orchestrator)",
            instance_type,
            default,
        )
        return default
    if zone not in subnets:
        raise CapacityError(
            f"aws: {instance_type} is offered in {zone}, where the meta deployment has no "
            f"subnet (it has {', '.join(sorted(subnets))}); apply it again "
            "(run without --reuse-orchestrator)"
        )
    return subnets[zone]


def plan_capacity(
    wanted: Iterable[tuple[str, int] | tuple[str, int, bool]],
    region: str,
    *,
    meta_pending: bool,
    own_run: int | None = None,
) -> CapacityPlan:
    """Zones and quota checks for (instance type, instances[, spot]) in `region`.

    own_run: a resumed run, whose instances still up are among `wanted` ("for this run"),
    not also "in use" (they were counted twice, refusing a resume near the quota)."""
    counts: dict[str, int] = {}
    by_quota: dict[tuple[str, bool], int] = {}  # (type, spot) -> instances
    for instance_type, instances, *spot in wanted:
        counts[instance_type] = counts.get(instance_type, 0) + instances
        key = (instance_type, bool(spot and spot[0]))
        by_quota[key] = by_quota.get(key, 0) + instances
    runners = set(counts)
    if meta_pending:
        for instance_type in META_TYPES:
            counts[instance_type] = counts.get(instance_type, 0) + 1
            by_quota[(instance_type, False)] = by_quota.get((instance_type, False), 0) + 1
    plan = CapacityPlan(region)
    import boto3  # here: ~0.3 s of CPU to import, in every master process

    try:
        ec2: Any = boto3.client("ec2", region_name=region)
        _zones(ec2, plan, list(counts))
        offered = [t for t in counts if t in plan.zones]
        plan.vcpus = _vcpus(ec2, offered)
        in_use = _in_use(ec2, own_run)
    except (BotoCoreError, ClientError) as exc:
        raise CapacityError(
            f"cannot ask EC2 in {region} which zones offer the instance types: {exc}; "
            "check the AWS credentials and CLOUDBENCH_AWS_REGION"
        ) from None
    if not plan.problems:
        _quotas(plan, {k: n for k, n in by_quota.items() if k[0] in offered}, in_use)
    for instance_type in set(META_TYPES) - runners:  # the meta stack picks its own zone
        plan.zones.pop(instance_type, None)
    return plan


def _zones(ec2: Any, plan: CapacityPlan, types: list[str]) -> None:
    kinds = [
        {"Name": "zone-type", "Values": ["availability-zone"]},
        {"Name": "state", "Values": ["available"]},
    ]
    zones = [
        z["ZoneName"] for z in ec2.describe_availability_zones(Filters=kinds)["AvailabilityZones"]
    ]
    order = [f"{plan.region}{s}" for s in PREFERRED if f"{plan.region}{s}" in zones]
    order += sorted(z for z in zones if z not in order)
    where: dict[str, set[str]] = {}
    pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": sorted(set(types))}],
    )
    for page in pages:
        for offer in page["InstanceTypeOfferings"]:
            where.setdefault(offer["InstanceType"], set()).add(offer["Location"])
    for instance_type in types:
        found = [z for z in order if z in where.get(instance_type, set())]
        if found:
            plan.zones[instance_type] = found[0]
        else:
            plan.problems.append(
                f"instance type {instance_type} is not offered in any availability zone of "
                f"{plan.region}; pick another type or region (CLOUDBENCH_AWS_REGION)"
            )


def _vcpus(ec2: Any, types: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    names = sorted(set(types))
    for start in range(0, len(names), 100):
        pages = ec2.get_paginator("describe_instance_types").paginate(
            InstanceTypes=names[start : start + 100]
        )
        for page in pages:
            for item in page["InstanceTypes"]:
                found[item["InstanceType"]] = int(item["VCpuInfo"]["DefaultVCpus"])
    return found


def _in_use(ec2: Any, own_run: int | None) -> dict[str, int]:
    """vCPUs of the instances running or starting in the region, by quota code (spot
    instances count against the spot quota), but those of `own_run` (its RunId tag)."""
    types: list[tuple[str, bool]] = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    for page in pages:
        for reservation in page["Reservations"]:
            types += [
                (i["InstanceType"], i.get("InstanceLifecycle") == "spot")
                for i in reservation["Instances"]
                if own_run is None or _run_tag(i) != str(own_run)
            ]
    vcpus = _vcpus(ec2, {t for t, _ in types}) if types else {}
    used: dict[str, int] = {}
    for instance_type, spot in types:
        code = quota_of(instance_type, spot)[0]
        used[code] = used.get(code, 0) + vcpus.get(instance_type, 0)
    return used


def _run_tag(instance: dict[str, Any]) -> str | None:
    """The RunId tag the providers/aws stack puts on its instances (default_tags)."""
    return next((t["Value"] for t in instance.get("Tags", []) if t.get("Key") == "RunId"), None)


def _quotas(
    plan: CapacityPlan, counts: dict[tuple[str, bool], int], in_use: dict[str, int]
) -> None:
    needed: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for (instance_type, spot), instances in counts.items():
        code, name = quota_of(instance_type, spot)
        if code:
            vcpus = plan.vcpus.get(instance_type, 0) * instances
            needed.setdefault((code, name), []).append((instance_type, vcpus))
    import boto3
    from botocore.config import Config

    # Few retries: an unreadable quota is reported, not waited for.
    retries = Config(retries={"max_attempts": 2, "mode": "standard"})
    client: Any = boto3.client("service-quotas", region_name=plan.region, config=retries)
    for (code, name), parts in needed.items():
        limit, why = _quota_value(client, code)
        shown = tuple(f"{t} {v} vCPUs" for t, v in parts)
        check = QuotaCheck(
            code, name, limit, in_use.get(code, 0), sum(v for _, v in parts), shown, why
        )
        plan.quotas.append(check)
        if not check.ok:
            plan.problems.append(check.line(plan.region))


def _quota_value(client: Any, code: str) -> tuple[float | None, str]:
    """The applied value, else AWS's default; None and why when neither can be read."""
    why = ""
    for call in (client.get_service_quota, client.get_aws_default_service_quota):
        try:
            return float(call(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]), ""
        except ClientError as exc:
            why = why or str(exc.response.get("Error", {}).get("Code") or exc)
        except BotoCoreError as exc:
            why = why or str(exc)
    return None, f"Service Quotas answered {why}"

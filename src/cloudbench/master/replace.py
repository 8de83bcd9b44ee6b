"""Replacing reclaimed spot VMs (issue 27, AWS).

When every VM of a spot type has been reclaimed (its runners saw the interruption notice:
their cause line says `preempted:`) while the type still has work, the master launches
the same VMs again — `terraform apply -target` on that type's instances once EC2 reports
them terminated (a runner sees the notice up to two minutes before; until then Terraform
would find them still there), so Terraform creates them anew — once per type. When EC2 refuses
spot capacity for them (insufficient capacity, a price under the market), it launches
them on-demand instead; the terminal and the cost ledger say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cloudbench.master.vms import Vm
from cloudbench.platform.stacks import Stack
from cloudbench.platform.terraform import TerraformError

logger = logging.getLogger(__name__)

# EC2's answers when it has no spot capacity for the request.
SPOT_REFUSED = (
    "InsufficientInstanceCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "InsufficientCapacity",
    "UnfulfillableCapacity",
    "capacity-not-available",
)
PREEMPTED = "preempted:"
RECLAIM_WAIT = 240.0  # seconds to wait for EC2 to end the reclaimed VMs (notice: 2 min)


@dataclass(frozen=True)
class Replaced:
    alias: str
    instance_type: str
    vms: int
    capacity: str  # what the replacements were launched as
    line: str  # for the terminal and the ledger


def all_reclaimed(group: list[Vm]) -> bool:
    """Every failed VM of the type saw its interruption notice (none failed otherwise)."""
    failed = [v for v in group if v.failed_at is not None]
    return bool(failed) and all(PREEMPTED in (v.cause or "") for v in failed)


def terminated(region: str, instance_ids: list[str]) -> bool:
    """EC2 reports every one of them terminated (False when it cannot be asked)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client: Any = boto3.client("ec2", region_name=region)
        pages = client.get_paginator("describe_instances").paginate(InstanceIds=instance_ids)
        states = [
            i["State"]["Name"] for p in pages for r in p["Reservations"] for i in r["Instances"]
        ]
    except (BotoCoreError, ClientError) as exc:
        logger.warning("cannot ask EC2 whether the reclaimed VMs are gone: %s", exc)
        return False
    return len(states) == len(instance_ids) and all(s == "terminated" for s in states)


def _entry(stack: Stack, alias: str) -> dict[str, Any] | None:
    types = stack.variables.get("instance_types")
    found = [t for t in types if t.get("alias") == alias] if isinstance(types, list) else []
    return found[0] if found and found[0].get("capacity") == "spot" else None


def replace_spot(stack: Stack, alias: str) -> Replaced | None:
    """Launch the type's VMs again; None when it is not a spot type or the apply failed."""
    entry = _entry(stack, alias)
    if entry is None:
        return None
    count = int(entry.get("instances") or stack.variables.get("instances") or 1)
    targets = [f'aws_instance.runner["{alias}-{n}"]' for n in range(count)]
    kind = "spot"
    try:
        stack.apply(targets)
    except TerraformError as exc:
        if not any(code in (exc.log_tail or "") for code in SPOT_REFUSED):
            logger.error("replacing the reclaimed VMs of %s failed: %s", alias, exc)
            return None
        entry["capacity"], entry["max_price"], kind = "on-demand", None, "on-demand"
        try:
            stack.apply(targets)
        except TerraformError as again:
            logger.error("replacing %s on-demand failed: %s", alias, again)
            return None
    why = " (EC2 refused spot capacity)" if kind == "on-demand" else ""
    line = (
        f"{alias}: every VM was reclaimed with work left; launched {count} replacement "
        f"VM(s) as {kind}{why}"
    )
    return Replaced(alias, str(entry["instance_type"]), count, kind, line)

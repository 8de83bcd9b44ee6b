"""Spot VMs of a run (issue 27): what their capacity costs, said once they are launched.

The AWS stack's `instances` output names each VM's capacity and zone; each spot type is
priced from EC2's spot price history in the zone its VMs run in, with the entry's date
(platform/spotprices.py). The cost ledger uses that price; without one it keeps the
on-demand price, spot's default cap, and says so.
"""

from __future__ import annotations

from typing import Any

from cloudbench.platform.prices import Price
from cloudbench.platform.spotprices import aws_spot_price


def spot_zones(outputs: dict[str, Any]) -> list[tuple[str, str]]:
    """(instance type, zone) of the stack's spot VMs, first zone per type."""
    instances = outputs.get("instances")
    found: dict[str, str] = {}
    for entry in (instances or {}).values() if isinstance(instances, dict) else []:
        if isinstance(entry, dict) and entry.get("capacity") == "spot" and entry.get("zone"):
            found.setdefault(str(entry["instance_type"]), str(entry["zone"]))
    return sorted(found.items())


def price_spot(
    outputs: dict[str, Any], region: str, endpoint_url: str | None = None
) -> tuple[dict[tuple[str, str], Price], list[str]]:
    """Spot prices by ("aws", type) and the lines the terminal prints about them."""
    prices: dict[tuple[str, str], Price] = {}
    lines = []
    for instance_type, zone in spot_zones(outputs):
        price = aws_spot_price(instance_type, zone, region, endpoint_url)
        if price is None:
            lines.append(
                f"spot: {instance_type} in {zone}: no spot price history; the cost "
                "ledger uses the on-demand price (spot's cap)"
            )
            continue
        prices[("aws", instance_type)] = price
        lines.append(
            f"spot: {instance_type} in {zone} at {price.usd_per_hour:.4f} USD/h "
            f"(EC2 spot price history, {price.date})"
        )
    return prices, lines

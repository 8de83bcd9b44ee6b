"""What a type costs: its price per hour (in the run's region) and the run's cost ledger."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from cloudbench.platform.prices import Price, PriceResolver
from cloudbench.protocol import CostLedger
from cloudbench.report.load import RunData
from cloudbench.report.merge import ResultSet

logger = logging.getLogger(__name__)

LEDGER = "cost-ledger.json"  # written by the master at teardown (master/ledger.py)
CLOUDS = ("aws", "azure")
SPOT_SOURCE = "aws-spot-price-history"  # platform/spotprices.py


def region_of(results: ResultSet, alias: str) -> str | None:
    """The region a type's tasks ran in, from metadata (format 2: `instance.region`)."""
    for task in results.tasks:
        if task.alias != alias:
            continue
        instance = task.metadata.get("instance")
        region = instance.get("region") if isinstance(instance, dict) else None
        region = region or task.metadata.get("region")
        if isinstance(region, str) and region:
            return region
    return None


def resolve_prices(
    results: ResultSet, resolver: PriceResolver
) -> tuple[dict[str, Price | None], dict[str, str | None]]:
    """(price, region) per alias; a cloud type with no known region is never looked up.
    A type that ran on spot capacity is priced as its run's ledger says it was (EC2's spot
    price history for its zone, issue 27), not at the list price."""
    prices, regions = {}, {}
    spot = _spot_prices(results)
    for alias in results.aliases:
        provider, instance_type = results.types.get(alias, ("local", alias))
        regions[alias] = region_of(results, alias)
        prices[alias] = spot.get(alias) or resolver.resolve(provider, instance_type, regions[alias])
    return prices, regions


def _spot_prices(results: ResultSet) -> dict[str, Price]:
    found: dict[str, Price] = {}
    for run in results.runs:
        ledger, _ = read_ledger(run)
        for e in ledger.entries if ledger is not None else []:
            if e.capacity == "spot" and e.usd_per_hour and e.price_source == SPOT_SOURCE:
                found[e.alias] = Price(
                    e.provider, e.instance_type, None, e.usd_per_hour, SPOT_SOURCE, e.price_date
                )
    return found


def price_note(provider: str, region: str | None, price: Price | None) -> str | None:
    """Why a type has no price, as the report says it; None when it has one."""
    if price is not None:
        return None
    if provider in CLOUDS and region is None:
        return "no price (region unknown)"
    return "no price"


def read_ledger(run: RunData) -> tuple[CostLedger | None, str | None]:
    """(the run's cost ledger, or None; a problem reading it, or None). Never raises:
    the ledger is an extra, and a damaged one must not cost the user the report."""
    path = run.path / LEDGER
    if not path.is_file():
        return None, None
    try:
        return CostLedger.model_validate_json(path.read_bytes()), None
    except (OSError, ValidationError) as exc:
        problem = f"{path}: unreadable cost ledger, costs not shown ({str(exc).splitlines()[0]})"
        logger.warning("%s", problem)
        return None, problem


def costs(results: ResultSet) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """Per alias: instance-hours and USD summed over the merged runs' ledgers; and the
    overall ledger summary (None when no run has a ledger)."""
    per_alias: dict[str, dict[str, Any]] = {}
    runs, problems, total, unpriced, meta = [], [], 0.0, set(), 0.0
    for run in results.runs:
        ledger, problem = read_ledger(run)
        if problem:
            problems.append(problem)
        if ledger is None:
            continue
        runs.append(ledger.run_id)
        total += ledger.total_usd
        meta += ledger.meta.usd if ledger.meta is not None else 0.0
        unpriced.update(ledger.unpriced)
        for entry in ledger.entries:
            cost = per_alias.setdefault(
                entry.alias, {"instance_hours": 0.0, "usd": 0.0, "vms": 0, "runs": 0}
            )
            cost["instance_hours"] += entry.instance_hours
            cost["vms"] += entry.vms
            cost["runs"] += 1
            # One unpriced share makes the type's cost unknown, never partly free.
            known = entry.usd is not None and cost["usd"] is not None
            cost["usd"] = cost["usd"] + entry.usd if known else None
    if not runs and not problems:
        return per_alias, None
    return per_alias, {
        "runs": runs,
        "total_usd": total if runs else None,
        "meta_usd": meta,
        "unpriced": sorted(unpriced),
        "problems": problems,
    }

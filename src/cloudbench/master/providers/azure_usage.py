"""Azure's side of the capacity check: zones a size is offered in, and vCPU usage.

Azure subnets span every zone of a region, so a runner VM stays regional (no `zone`):
Azure places it wherever the size is offered. What refuses a size is a whole-location
restriction, which `azure.size_facts` already turns into one line; the zones the
Resource SKUs API lists (`locationInfo[].zones` minus `Zone` restrictions) are reported
for the record. The vCPUs the run adds are checked against the Compute usages of the
location (`Microsoft.Compute/locations/{location}/usages`): the size family's quota (the
SKU's `family`, e.g. standardDPLSv6Family) and "Total Regional vCPUs" (`cores`). A usage
the API does not return, or an answer that fails, is reported as not checked.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest

from cloudbench.master.providers.base import ProviderError
from cloudbench.platform.azure import AzureSettings, AzureUnavailable, make_client

USAGES_API = "2023-09-01"
TOTAL = "cores"  # "Total Regional vCPUs"


def zones(sku: dict[str, Any], location: str) -> tuple[str, ...]:
    """The zones of `location` that offer the size to this subscription."""
    offered: set[str] = set()
    for info in sku.get("locationInfo") or []:
        if str(info.get("location", "")).lower() == location.lower():
            offered |= {str(z) for z in info.get("zones") or []}
    for restriction in sku.get("restrictions") or []:
        if restriction.get("type") == "Zone":
            info = restriction.get("restrictionInfo") or {}
            offered -= {str(z) for z in info.get("zones") or []}
    return tuple(sorted(offered))


def needed(sizes: dict[str, tuple[str, int]], counts: dict[str, int]) -> dict[str, int]:
    """vCPUs per usage name: {size: (family, vCPUs)} x instances, and their total."""
    found: dict[str, int] = {}
    for size, instances in counts.items():
        family, vcpus = sizes[size]
        found[family] = found.get(family, 0) + vcpus * instances
        found[TOTAL] = found.get(TOTAL, 0) + vcpus * instances
    return found


def check_usage(
    usages: list[dict[str, Any]] | None, wanted: dict[str, int], location: str, why: str = ""
) -> tuple[list[str], list[str]]:
    """(lines to show, problems that refuse the run) for the vCPUs wanted per usage name."""
    by_name = {str((u.get("name") or {}).get("value", "")).lower(): u for u in usages or []}
    lines, problems = [], []
    for name, vcpus in wanted.items():
        usage = by_name.get(name.lower())
        if usage is None:
            reason = why or "the usages API does not list it"
            shown = f"azure quota {name} in {location}: not checked ({reason})"
            lines.append(f"{shown}; this run needs {vcpus}")
            continue
        label = (usage.get("name") or {}).get("localizedValue") or name
        used, limit = int(usage.get("currentValue", 0)), int(usage.get("limit", 0))
        total = f"{used} in use + {vcpus} for this run = {used + vcpus}"
        if used + vcpus <= limit:
            lines.append(f"azure quota {name} ({label}) in {location}: {total} of {limit}: ok")
        else:
            problems.append(
                f"azure: quota {name} ({label}) in {location} is {limit} vCPUs; {total}; "
                "request more (Azure portal: Quotas > Compute, or az quota create) or use "
                "fewer instances / smaller sizes"
            )
    return lines, problems


def fetch_usages(settings: AzureSettings) -> tuple[list[dict[str, Any]] | None, str]:
    """The location's Compute usages, or None and why they could not be read."""
    base = settings.arm_endpoint.rstrip("/")
    url: str | None = (
        f"{base}/subscriptions/{settings.subscription_id}/providers/Microsoft.Compute/"
        f"locations/{settings.location}/usages?api-version={USAGES_API}"
    )
    found: list[dict[str, Any]] = []
    try:
        client = make_client(settings)
        while url:
            response = client.send_request(HttpRequest("GET", url))
            if response.status_code >= 400:
                return None, f"the usages API answered {response.status_code}"
            body = response.json()
            found += body.get("value", [])
            url = body.get("nextLink")
    except AzureUnavailable as exc:
        raise ProviderError(str(exc)) from None
    except AzureError as exc:
        return None, str(exc).splitlines()[0]
    return found, ""

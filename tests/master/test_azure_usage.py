"""Azure zones and vCPU usage from recorded, ARM-shaped answers (Azure cannot run here).

The SKU and usages bodies below have the shape the Resource SKUs API (2021-07-01) and the
Compute usages API (2023-09-01) return; the values are made up. The HTTP path itself is
exercised against the ARM stand-in in tests/master/test_azure_path.py.
"""

from __future__ import annotations

from typing import Any

from cloudbench.master.providers.azure_usage import TOTAL, check_usage, needed, zones

SKU: dict[str, Any] = {
    "resourceType": "virtualMachines",
    "name": "Standard_D2pls_v6",
    "tier": "Standard",
    "size": "D2pls_v6",
    "family": "standardDPLSv6Family",
    "locations": ["westeurope"],
    "locationInfo": [{"location": "westeurope", "zones": ["2", "3", "1"], "zoneDetails": []}],
    "capabilities": [{"name": "vCPUs", "value": "2"}],
    "restrictions": [
        {
            "type": "Zone",
            "values": ["westeurope"],
            "restrictionInfo": {"locations": ["westeurope"], "zones": ["2"]},
            "reasonCode": "NotAvailableForSubscription",
        }
    ],
}

USAGES: list[dict[str, Any]] = [
    {
        "limit": 10,
        "unit": "Count",
        "currentValue": 4,
        "name": {"value": "cores", "localizedValue": "Total Regional vCPUs"},
    },
    {
        "limit": 4,
        "unit": "Count",
        "currentValue": 0,
        "name": {"value": "standardDPLSv6Family", "localizedValue": "Standard DPLSv6 Family vCPUs"},
    },
]


def test_zones_are_those_listed_less_the_restricted_ones() -> None:
    assert zones(SKU, "westeurope") == ("1", "3")
    assert zones(SKU, "WestEurope") == ("1", "3")
    assert zones(SKU, "northeurope") == ()  # a location without zones: regional only


def test_usage_within_the_quotas_is_shown() -> None:
    wanted = needed({"Standard_D2pls_v6": ("standardDPLSv6Family", 2)}, {"Standard_D2pls_v6": 2})
    assert wanted == {"standardDPLSv6Family": 4, TOTAL: 4}
    lines, problems = check_usage(USAGES, wanted, "westeurope")
    assert problems == []
    assert lines == [
        "azure quota standardDPLSv6Family (Standard DPLSv6 Family vCPUs) in westeurope: "
        "0 in use + 4 for this run = 4 of 4: ok",
        "azure quota cores (Total Regional vCPUs) in westeurope: 4 in use + 4 for this run "
        "= 8 of 10: ok",
    ]


def test_a_family_or_regional_quota_too_small_refuses_with_the_numbers() -> None:
    wanted = needed({"Standard_D2pls_v6": ("standardDPLSv6Family", 2)}, {"Standard_D2pls_v6": 4})
    _, problems = check_usage(USAGES, wanted, "westeurope")
    fix = (
        "request more (Azure portal: Quotas > Compute, or az quota create) or use fewer "
        "instances / smaller sizes"
    )
    assert problems == [
        "azure: quota standardDPLSv6Family (Standard DPLSv6 Family vCPUs) in westeurope is 4 "
        f"vCPUs; 0 in use + 8 for this run = 8; {fix}",
        "azure: quota cores (Total Regional vCPUs) in westeurope is 10 vCPUs; 4 in use + 8 "
        f"for this run = 12; {fix}",
    ]


def test_unreadable_usages_are_not_checked_never_passed() -> None:
    wanted = {"standardDPLSv6Family": 2, TOTAL: 2}
    lines, problems = check_usage(None, wanted, "westeurope", "the usages API answered 403")
    assert problems == []
    assert lines[0] == (
        "azure quota standardDPLSv6Family in westeurope: not checked (the usages API "
        "answered 403); this run needs 2"
    )

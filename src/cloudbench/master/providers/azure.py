"""What the Azure stack needs that only Azure can say: each size's architecture and disks.

`cloudbench run` asks the Resource SKUs API (through azure-mgmt-resource's pipeline:
DefaultAzureCredential, retries) before any Terraform runs, so missing credentials, an
unset subscription or a size the region does not offer are one clear line up front, and
the stack gets the architecture from the API (Arm64 sizes boot the arm64 image), never
from the size's name.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.rest import HttpRequest
from rich.console import Console

from cloudbench.master.providers.allowlist import AllowList, url_port
from cloudbench.master.providers.azure_usage import TOTAL, check_usage, fetch_usages, needed, zones
from cloudbench.master.providers.base import ProviderContext, ProviderError
from cloudbench.master.stacks import MetaOutputs
from cloudbench.platform.azure import (
    NO_CREDENTIALS,
    AzureSettings,
    AzureUnavailable,
    load_settings,
    make_client,
)
from cloudbench.platform.stacks import Stack
from cloudbench.protocol import RunSpec

logger = logging.getLogger(__name__)

SKUS_API = "2021-07-01"
# azurerm/ARM errors that mean "the subscription may not have that many vCPUs".
QUOTA = re.compile(
    r"(QuotaExceeded|OperationNotAllowed.*quota|exceeding approved .*quota|SkuNotAvailable)",
    re.IGNORECASE | re.DOTALL,
)


# Azure's CpuArchitectureType -> EC2's name, which the master's wheelhouses are keyed by.
ARCHES = {"x64": "x86_64", "Arm64": "arm64"}


@dataclass(frozen=True)
class SizeFacts:
    name: str
    architecture: str  # x64 or Arm64, the API's CpuArchitectureType
    premium_io: bool
    gen2: bool  # HyperVGenerations lists V2: the generation-2 image boots
    # SCSI unless the size lists only NVMe (DiskControllerTypes; absent means SCSI only).
    disk_controller: str = "SCSI"
    vcpus: int = 0  # capability vCPUs
    family: str = ""  # the SKU's family: the name of its vCPU quota (usages API)
    zones: tuple[str, ...] = ()  # zones of the location that offer it (none: no zones)


def check_settings(settings: AzureSettings) -> None:
    missing = [
        f"CLOUDBENCH_AZURE_{n.upper()}"
        for n in ("subscription_id", "location", "ssh_public_key")
        if not getattr(settings, n).strip()
    ]
    if missing:
        raise ProviderError(
            "Azure settings missing: "
            + ", ".join(missing)
            + " (set them in the environment or in <CLOUDBENCH_HOME>/azure.env)"
        )


def size_facts(
    settings: AzureSettings, sizes: list[str], found: dict[str, dict[str, Any]] | None = None
) -> dict[str, SizeFacts]:
    """Facts for every wanted size in the configured location, or one ProviderError.
    `found`: the SKU listing when the caller has it already."""
    try:
        found = _list_skus(make_client(settings), settings) if found is None else found
    except AzureUnavailable as exc:
        raise ProviderError(str(exc)) from None
    except ClientAuthenticationError:
        raise ProviderError(NO_CREDENTIALS) from None
    except AzureError as exc:
        raise ProviderError(f"cannot ask Azure for VM sizes: {str(exc).splitlines()[0]}") from None
    facts: dict[str, SizeFacts] = {}
    for size in sizes:
        sku = found.get(size.lower())
        if sku is None:
            raise ProviderError(
                f"azure: VM size {size} is not offered in {settings.location} for this "
                "subscription; pick another size or set CLOUDBENCH_AZURE_LOCATION"
            )
        facts[size] = _facts(size, sku, settings.location)
    return facts


def _list_skus(client: Any, settings: AzureSettings) -> dict[str, dict[str, Any]]:
    base = settings.arm_endpoint.rstrip("/")
    url: str | None = (
        f"{base}/subscriptions/{settings.subscription_id}/providers/Microsoft.Compute/skus"
        f"?api-version={SKUS_API}&$filter=location eq '{settings.location}'"
    )
    found: dict[str, dict[str, Any]] = {}
    while url:
        response = client.send_request(HttpRequest("GET", url))
        response.raise_for_status()
        body = response.json()
        for sku in body.get("value", []):
            if sku.get("resourceType") == "virtualMachines" and not _restricted(sku, settings):
                found[str(sku.get("name", "")).lower()] = sku
        url = body.get("nextLink")
    return found


def _restricted(sku: dict[str, Any], settings: AzureSettings) -> bool:
    """A size the subscription may not use in this location (whole-location restriction)."""
    for restriction in sku.get("restrictions") or []:
        values = [v.lower() for v in restriction.get("values") or []]
        if restriction.get("type") == "Location" and settings.location.lower() in values:
            return True
    return False


def _facts(size: str, sku: dict[str, Any], location: str) -> SizeFacts:
    caps = {c.get("name"): str(c.get("value")) for c in sku.get("capabilities") or []}
    arch = caps.get("CpuArchitectureType", "")
    if arch not in ("x64", "Arm64"):
        raise ProviderError(f"azure: the API reports no CPU architecture for {size} ({arch!r})")
    gen2 = "V2" in caps.get("HyperVGenerations", "").split(",")
    controllers = {c.strip() for c in caps.get("DiskControllerTypes", "SCSI").split(",")}
    disk = "SCSI" if "SCSI" in controllers or not controllers - {""} else "NVMe"
    premium = caps.get("PremiumIO", "").lower() == "true"
    vcpus = int(caps["vCPUs"]) if caps.get("vCPUs", "").isdigit() else 0
    family = str(sku.get("family") or "")
    return SizeFacts(size, arch, premium, gen2, disk, vcpus, family, zones(sku, location))


def capacity(settings: AzureSettings, facts: dict[str, SizeFacts], spec: RunSpec) -> list[str]:
    """Lines for the zones and vCPU quotas of the run's sizes; ProviderError if too few."""
    counts: dict[str, int] = {}
    for item in spec.azure:
        counts[item.instance_type] = counts.get(item.instance_type, 0)
        counts[item.instance_type] += spec.counts(item).instances
    lines = [
        f"azure zones for {f.name} in {settings.location}: "
        + (", ".join(f.zones) + " (the VM is regional)" if f.zones else "none (regional)")
        for f in facts.values()
    ]
    families = {n: (f.family or TOTAL, f.vcpus) for n, f in facts.items()}
    usages, why = fetch_usages(settings)
    shown, problems = check_usage(usages, needed(families, counts), settings.location, why)
    if problems:
        raise ProviderError("\n".join(problems))
    return lines + shown


def dry_run_lines(spec: RunSpec) -> list[str]:
    """--dry-run: the zones and vCPU quotas of the run's Azure sizes (the checks `cloudbench
    run` makes before any terraform call; read-only). Azure unreachable or unconfigured:
    "not checked" and why, as a cost plan needs no credentials; a real refusal: refused."""
    settings = load_settings()
    wanted = sorted({s.instance_type for s in spec.azure})
    try:
        check_settings(settings)
        client = make_client(settings)
        found = _list_skus(client, settings)
    except (ProviderError, AzureUnavailable, AzureError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [f"azure zones and quotas: not checked ({why})"]
    try:
        return capacity(settings, size_facts(settings, wanted, found), spec)
    except ProviderError as exc:
        lines = str(exc).splitlines()
        return [f"refused: {ln if ln.startswith('azure') else f'azure: {ln}'}" for ln in lines]


def quota_hint(log_tail: str, location: str) -> str | None:
    """One line for a quota refusal in a terraform log, naming what to do."""
    if not QUOTA.search(log_tail or ""):
        return None
    return (
        f"stack azure: the subscription's vCPU quota in {location} does not allow these VMs; "
        "request more (Azure portal: Quotas > Compute) or use fewer instances / smaller sizes"
    )


def stack_variables(
    settings: AzureSettings,
    sizes: dict[str, SizeFacts],
    ctx: ProviderContext,
    out: MetaOutputs,
    pins: dict[str, str],
) -> dict[str, object]:
    """The azure stack's variables for this run; `pins`: the runner's pinned dependencies
    by EC2 architecture (master/wheelhouse.py), passed on by Azure architecture."""
    types = [
        {
            "instance_type": s.instance_type,
            "alias": s.effective_alias,
            "architecture": sizes[s.instance_type].architecture,
            "premium_io": sizes[s.instance_type].premium_io,
            "gen2": sizes[s.instance_type].gen2,
            "disk_controller_type": sizes[s.instance_type].disk_controller,
            "instances": ctx.spec.counts(s).instances,
            "capacity": ctx.spec.capacity_of("azure", s),
            "max_price": ctx.spec.max_price_of(s),
        }
        for s in ctx.instance_types("azure")
    ]
    used = {str(t["architecture"]) for t in types}
    return {
        "subscription_id": settings.subscription_id,
        "location": settings.location,
        "instance_types": types,
        "instances": ctx.spec.per_instance_type.instances,
        # Azure VMs are outside the meta VPC: they reach the public URL.
        "orchestrator_url": out.url,
        "runner_token": ctx.runner_token,
        "orchestrator_tls_cert": out.pin_for(out.url) or "",
        "ssh_public_key": settings.ssh_public_key,
        "ssh_cidr": settings.ssh_cidr,
        "runner_requirements": {a: pins[ARCHES[a]] for a in used if ARCHES[a] in pins},
    }


def admit_nat(stack: Stack, out: MetaOutputs, run_id: int, console: Console) -> None:
    """Everything but the VMs first; then the orchestrator admits the run's NAT address
    (allowlist.py); the caller's apply then launches the VMs."""
    if not out.runner_nat_group:
        raise ProviderError(
            "stack azure: the meta deployment has no runner_nat_security_group_id output "
            "(deployed by an older cloudbench); run without --reuse-orchestrator once"
        )
    stack.variables["launch_vms"] = False
    stack.apply()
    nat = str(stack.terraform().output().get("nat_public_ip") or "")
    allow = AllowList(out.region, out.runner_nat_group)
    cidr = allow.allow(run_id, nat, url_port(out.url))
    console.print(f"azure: orchestrator admits the runners' NAT address {cidr}")
    stack.variables["launch_vms"] = True

"""Where moto's EC2 differs from EC2 in a way the stacks notice, the twin makes it behave
like EC2 (moto runs in the twin's process, so its models can be patched).

- A terminated instance's network interfaces that are not deleted with it (one created
  on its own and attached at launch, like the orchestrator's) become `available`, as on
  EC2; moto kept them attached, and Terraform's destroy of such an interface then failed
  ("cannot be detached"). The terminated instance still describes as before.
- An interface made at launch is deleted with its instance (EC2's default); moto kept
  it unless asked, so every runner left one behind.
- Terminating an instance that is terminated already changes nothing, as on EC2; moto
  deleted its network interfaces again and answered InvalidNetworkInterfaceID.NotFound
  (the twin's "powered off" and Terraform's destroy both terminate a finished runner).
- An instance launched with its security groups on its network interface (what the
  provider sends with `associate_public_ip_address`) reports them as its own, as on EC2;
  moto reported none, so every later plan wanted to add them to the bastion again.
- Spot (issue 27). moto launches an instance with spot market options as
  `InstanceLifecycle: spot` (as EC2 does; kept), but its DescribeSpotPriceHistory answers
  every type and zone with one price, 0.00001 USD, stamped 2006-01-02: the twin answers
  with a stand-in price per type (SPOT_PRICES, about a third of on-demand, as spot often
  is; not a real quote) stamped an hour ago, newest first, as EC2 does. moto also makes
  no spot request for such an instance (EC2 does; nothing here reads it) and, when the
  twin reclaims one (--interrupt), the state reason is set to EC2's
  `Server.SpotInstanceTermination` by tests/twin/vms.py.
- moto's Service Quotas knows only the `vpc` service: asked for EC2's on-demand vCPU
  quota it answers NoSuchResourceException (the master then says "not checked"). The
  twin answers `EC2_QUOTAS`, as an account with that applied value would.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.models.instances import Instance
from moto.ec2.responses.spot_instances import SpotInstances
from moto.servicequotas.models import ServiceQuotasBackend

# USD per hour, stand-ins for the twin's spot price history (the twin's config types).
SPOT_PRICES = {"c7i.large": "0.0301", "c7g.medium": "0.0127"}
DEFAULT_SPOT_PRICE = "0.0100"

# Running On-Demand Standard instances; All Standard Spot Instance Requests (vCPUs).
EC2_QUOTAS = {"L-1216C47A": 32.0, "L-34B43A08": 32.0}


def _release(nic: NetworkInterface) -> None:
    """Detached from its (terminated) instance, which keeps it for its description."""
    nic.instance = None
    nic.attachment_id = None
    nic.attach_time = None
    nic.status = "available"


def _quotas() -> None:
    original = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        if service_code != "ec2" or quota_code not in EC2_QUOTAS:
            return original(self, service_code, quota_code)
        return {
            "ServiceCode": "ec2",
            "QuotaCode": quota_code,
            "Value": EC2_QUOTAS[quota_code],
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }

    ServiceQuotasBackend.get_service_quota = get_service_quota  # type: ignore[method-assign]


def _price(instance_type: str, older: bool) -> str:
    price = float(SPOT_PRICES.get(instance_type, DEFAULT_SPOT_PRICE))
    return f"{price * 1.25 if older else price:.4f}"  # the older entry differs


def _spot_price_history(self: SpotInstances) -> ActionResult:
    types = self._get_param("InstanceTypes", [])
    offers = self.ec2_backend.describe_spot_price_history(types, self._filters_from_querystring())
    now = datetime.now(UTC).replace(microsecond=0)
    history = [
        {
            "InstanceType": o["InstanceType"],
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": _price(o["InstanceType"], older=hours > 1),
            "AvailabilityZone": o["Location"],
            "Timestamp": (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }
        for o in offers
        for hours in (1, 3)  # two entries per zone: readers must take the newest
    ]
    return ActionResult({"SpotPriceHistory": history})


def install() -> None:
    _quotas()
    SpotInstances.describe_spot_price_history = _spot_price_history  # type: ignore[method-assign]
    original_init = Instance.__init__

    def init(self: Instance, backend: Any, *args: Any, **kwargs: Any) -> None:
        existing = set(backend.enis)
        original_init(self, backend, *args, **kwargs)
        for nic in self.nics.values():
            if nic.id not in existing:  # made for this instance: EC2 deletes it with it
                nic.delete_on_termination = True
        primary = self.nics.get(0)
        if not self.security_groups and primary is not None:
            self.security_groups = list(primary._group_set)

    Instance.__init__ = init  # type: ignore[method-assign,assignment]
    original = Instance.terminate

    def terminate(self: Instance) -> Any:
        if self._state.name == "terminated":  # EC2: terminating it again changes nothing
            return copy.copy(self._state)
        state = original(self)
        for nic in list(self.nics.values()):
            if not nic.delete_on_termination:
                _release(nic)
        return state

    Instance.terminate = terminate  # type: ignore[method-assign]

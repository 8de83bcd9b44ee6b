"""Azure runners' entry in the orchestrator's allow-list (issue 25, item 9).

Azure runners reach the orchestrator's public URL from their run's NAT address (the azure
stack's `nat_public_ip`), which neither `allowed_http_cidrs` nor the VPC covers. The meta
stack gives the orchestrator a security group of its own for such entries
(`runner_nat_security_group_id`, no Terraform-managed ingress rules); for each run the
master adds one rule there — TCP on the orchestrator URL's port from `<nat>/32` — before
the run's VMs boot, and revokes it when the run's stacks are destroyed (`cloudbench nuke
--run-id` revokes those of a run whose master died: protocol/marks.py). boto3, not a meta
variable: the address exists only after meta is applied, a second meta apply per run costs
minutes and could drop a concurrent run's entry; rules Terraform does not manage survive
the next run's meta apply (infrastructure/meta/README.md).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from cloudbench.master.providers.base import ProviderError
from cloudbench.protocol.marks import nat_rule_description as description

logger = logging.getLogger(__name__)


def url_port(url: str) -> int:
    """The port a client of `url` connects to (the scheme's default when none is given)."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


class AllowList:
    """One security group's per-run entries; credentials and endpoint: boto3's chain."""

    def __init__(self, region: str, group_id: str) -> None:
        self.region, self.group_id = region, group_id
        self._client: Any = None

    def _ec2(self) -> Any:
        if self._client is None:
            import boto3  # here: ~0.3 s of CPU to import, in every master process

            self._client = boto3.client("ec2", region_name=self.region)
        return self._client

    def allow(self, run_id: int, address: str, port: int) -> str:
        """Admit `address`/32 on `port` for the run; the CIDR, or one ProviderError."""
        try:
            cidr = f"{ipaddress.IPv4Address(address.strip())}/32"
        except ValueError:
            raise ProviderError(
                f"stack azure: nat_public_ip {address!r} is not an IPv4 address; "
                "cannot admit the Azure runners at the orchestrator"
            ) from None
        ranges = [{"CidrIp": cidr, "Description": description(run_id)}]
        permission = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": ranges}
        try:
            self._ec2().authorize_security_group_ingress(
                GroupId=self.group_id, IpPermissions=[permission]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidPermission.Duplicate":
                raise ProviderError(self._why(exc, f"admit {cidr} on port {port}")) from None
        except BotoCoreError as exc:
            raise ProviderError(self._why(exc, f"admit {cidr} on port {port}")) from None
        logger.info("run %s: %s admitted on port %s (%s)", run_id, cidr, port, self.group_id)
        return cidr

    def revoke(self, run_id: int) -> list[str]:
        """Remove the run's entries; the CIDRs removed. Failures are logged, not raised:
        the group (and the rule) goes with the meta deployment."""
        try:
            found = self._ec2().describe_security_groups(GroupIds=[self.group_id])
            mine = [
                {**_bare(p), "IpRanges": [{"CidrIp": r["CidrIp"]}]}
                for p in found["SecurityGroups"][0].get("IpPermissions", [])
                for r in p.get("IpRanges", [])
                if r.get("Description") == description(run_id)
            ]
            if mine:
                self._ec2().revoke_security_group_ingress(GroupId=self.group_id, IpPermissions=mine)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("%s", self._why(exc, f"revoke run {run_id}'s entry"))
            return []
        return [str(p["IpRanges"][0]["CidrIp"]) for p in mine]

    def _why(self, exc: Exception, what: str) -> str:
        return f"security group {self.group_id}: cannot {what}: {str(exc).splitlines()[0]}"


def _bare(permission: dict[str, Any]) -> dict[str, Any]:
    keys = ("IpProtocol", "FromPort", "ToPort")
    return {k: permission[k] for k in keys if k in permission}

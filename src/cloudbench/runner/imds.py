"""Who am I on EC2: type, id, placement, image and lifecycle from IMDSv2."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import httpx

logger = logging.getLogger(__name__)

# boto3's own variable for the endpoint, so a test or an IPv6-only host can point it.
ENDPOINT_ENV = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
DEFAULT_ENDPOINT = "http://169.254.169.254"


class MetadataUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class InstanceIdentity:
    instance_type: str
    instance_id: str
    region: str | None = None
    zone: str | None = None
    image_id: str | None = None
    lifecycle: str | None = None  # "spot" / "on-demand" as EC2 reports it
    # IMDS has no tenancy entry; a Dedicated Host shows as placement/host-id.
    host_id: str | None = None
    # When EC2 started the instance: the identity document's pendingTime (boot stage
    # `instance_start`, issue 27).
    launched_at: str | None = None

    def facts(self) -> dict[str, str | None]:
        return {
            "instance_type": self.instance_type,
            "instance_id": self.instance_id,
            "region": self.region,
            "zone": self.zone,
            "image_id": self.image_id,
            "lifecycle": self.lifecycle,
            "tenancy": "host" if self.host_id else None,
            "host_id": self.host_id,
            "launched_at": self.launched_at,
        }


_OPTIONAL = {
    "region": "placement/region",
    "zone": "placement/availability-zone",
    "image_id": "ami-id",
    "lifecycle": "instance-life-cycle",
    "host_id": "placement/host-id",
}


def _pending_time(client: httpx.Client, headers: dict[str, str]) -> str | None:
    resp = client.get("/latest/dynamic/instance-identity/document", headers=headers)
    try:
        value = resp.json().get("pendingTime") if resp.status_code == 200 else None
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def read_identity(endpoint: str | None = None, timeout: float = 2.0) -> InstanceIdentity:
    """IMDSv2 only: a session token first (PUT), then reads carrying it."""
    base = (endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")
    try:
        with httpx.Client(base_url=base, timeout=timeout) as client:
            token = client.put(
                "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"}
            )
            token.raise_for_status()
            headers = {"X-aws-ec2-metadata-token": token.text}
            values = []
            for path in ("instance-type", "instance-id"):
                resp = client.get(f"/latest/meta-data/{path}", headers=headers)
                resp.raise_for_status()
                values.append(resp.text.strip())
            extra = {}
            for key, path in _OPTIONAL.items():
                resp = client.get(f"/latest/meta-data/{path}", headers=headers)
                # 404: not told (no host id outside Dedicated Hosts); the rest is provenance
                extra[key] = resp.text.strip() if resp.status_code == 200 else None
            extra["launched_at"] = _pending_time(client, headers)
    except httpx.HTTPError as exc:
        raise MetadataUnavailable(
            f"cannot read the instance type from the EC2 metadata service at {base}: {exc}; "
            "pass --instance-type"
        ) from exc
    logger.info("EC2 metadata: %s (%s)", values[0], values[1])
    return InstanceIdentity(instance_type=values[0], instance_id=values[1], **extra)

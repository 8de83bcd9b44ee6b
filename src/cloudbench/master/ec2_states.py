"""What EC2 says about a run's instances, so a VM that is gone is counted at once.

A reclaimed, crashed or self-terminated instance stops reporting; waiting for its
silence (or its boot timeout) costs minutes. `DescribeInstances` says `shutting-down`,
`terminated`, `stopping` or `stopped` right away. Credentials and endpoint come from
boto3's normal chain (the same the master's Terraform uses); any trouble is logged once
and the watch falls back to the reports.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

GONE = ("shutting-down", "terminated", "stopping", "stopped")
EVERY = 10.0  # seconds between looks


class Ec2States:
    def __init__(self, region: str) -> None:
        self.region = region
        self._client: Any = None
        self._last = 0.0
        self._warned = False

    def gone(self, instance_ids: list[str]) -> dict[str, str]:
        """{instance id: EC2 state} of those that are gone; at most every EVERY seconds."""
        now = time.monotonic()
        if not instance_ids or now - self._last < EVERY:
            return {}
        self._last = now
        try:
            if self._client is None:
                self._client = boto3.client("ec2", region_name=self.region)
            pages = self._client.get_paginator("describe_instances").paginate(
                InstanceIds=instance_ids
            )
            states = {
                i["InstanceId"]: i["State"]["Name"]
                for page in pages
                for r in page["Reservations"]
                for i in r["Instances"]
            }
        except (BotoCoreError, ClientError) as exc:
            if not self._warned:
                logger.warning(
                    "cannot ask EC2 for the runners' states (%s); relying on their reports", exc
                )
                self._warned = True
            return {}
        return {i: s for i, s in states.items() if s in GONE}

"""Spot prices (issue 27): EC2's DescribeSpotPriceHistory for one type in the zone its VMs
run in, the newest entry with its own timestamp. Never guessed: nothing found is None.
(Azure's Retail Prices API lists Spot meters too; not looked up yet.)
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudbench.platform.prices import Price

logger = logging.getLogger(__name__)

SOURCE = "aws-spot-price-history"
PRODUCT = "Linux/UNIX"
LOOKBACK = timedelta(hours=6)  # EC2 lists an entry when the price changes


def aws_spot_price(
    instance_type: str, zone: str, region: str, endpoint_url: str | None = None
) -> Price | None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client: Any = boto3.client("ec2", region_name=region, endpoint_url=endpoint_url)
        pages = client.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=[instance_type],
            ProductDescriptions=[PRODUCT],
            Filters=[{"Name": "availability-zone", "Values": [zone]}],
            StartTime=datetime.now(UTC) - LOOKBACK,
        )
        history = [h for page in pages for h in page.get("SpotPriceHistory", [])]
    except (BotoCoreError, ClientError) as exc:
        logger.warning("spot price history of %s in %s failed: %s", instance_type, zone, exc)
        return None
    history = [h for h in history if h.get("AvailabilityZone") == zone and h.get("SpotPrice")]
    if not history:
        return None
    newest = max(history, key=lambda h: h["Timestamp"])
    stamp = newest["Timestamp"]
    when = stamp.astimezone(UTC).isoformat(timespec="seconds") if stamp else None
    return Price("aws", instance_type, zone, float(newest["SpotPrice"]), SOURCE, when)

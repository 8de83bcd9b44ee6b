"""Spot capacity (issue 27): config, the price from EC2's spot price history (boto3 over
HTTP against moto's server, with the twin's fidelity patch: moto's own answer is one
price stamped 2006), and the ledger saying which capacity ran at what price."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.ec2.responses.spot_instances import SpotInstances
from moto.server import ThreadedMotoServer
from pydantic import ValidationError

from cloudbench.master.ledger import CostMeter
from cloudbench.master.spot import price_spot
from cloudbench.platform.spotprices import aws_spot_price
from cloudbench.protocol import RunSpec
from tests.pg import free_port
from tests.twin import fidelity

REGION = "us-east-1"


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(SpotInstances, "describe_spot_price_history", fidelity._spot_price_history)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_CONFIG_FILE": os.devnull,
                       "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _spec(**extra: Any) -> RunSpec:
    return RunSpec.model_validate({
        "ruby_version": "3.4", "per_instance_type": {"tasks": 2, "instances": 2},
        "aws": [{"instance_type": "c7i.large", "alias": "spotty", "capacity": "spot"},
                {"instance_type": "c7g.medium"}],
        **extra,
    })  # fmt: skip


def test_capacity_global_or_per_entry_and_bad_input_named() -> None:
    spec = _spec()
    spotty, plain = spec.aws
    assert spec.capacity_of("aws", spotty) == "spot"
    assert spec.capacity_of("aws", plain) == "on-demand"
    spec = _spec(capacity="spot", max_price=0.05, local=["here"])
    assert spec.capacity_of("aws", spec.aws[1]) == "spot"
    assert spec.capacity_of("local", spec.local[0]) == "on-demand"
    assert spec.max_price_of(spec.aws[1]) == 0.05
    assert "capacity" not in spec.request_body()  # master-side only
    bad: list[tuple[dict[str, Any], str]] = [
        ({"capacity": "cheap"}, "capacity"),
        ({"aws": [{"instance_type": "c7i.large", "max_price": 0.1}]}, "max_price caps a spot"),
        ({"local": [{"instance_type": "x", "capacity": "spot"}]}, "local: x: capacity"),
        ({"capacity": "spot", "max_price": -1}, "max_price"),
    ]
    for extra, message in bad:
        with pytest.raises(ValidationError, match=message):
            _spec(**extra)


def test_spot_price_is_the_newest_of_the_zone_with_its_date(moto_url: str) -> None:
    price = aws_spot_price("c7i.large", "us-east-1a", REGION)
    assert price is not None
    assert (price.usd_per_hour, price.source, price.region) == (
        0.0301, "aws-spot-price-history", "us-east-1a",
    )  # fmt: skip
    stamped = datetime.fromisoformat(str(price.date))
    assert timedelta(minutes=50) < datetime.now(UTC) - stamped < timedelta(minutes=70)
    assert aws_spot_price("c7i.large", "us-east-1z", REGION) is None  # no such zone


def test_launched_spot_vms_are_priced_and_the_ledger_says_spot(moto_url: str) -> None:
    outputs = {"instances": {
        "spotty-0": {"id": "i-1", "instance_type": "c7i.large", "alias": "spotty",
                     "capacity": "spot", "zone": "us-east-1b"},
        "c7g.medium-0": {"id": "i-2", "instance_type": "c7g.medium", "alias": "c7g.medium",
                         "capacity": "on-demand", "zone": "us-east-1b"},
    }}  # fmt: skip
    prices, lines = price_spot(outputs, REGION)
    assert list(prices) == [("aws", "c7i.large")]
    assert lines[0].startswith("spot: c7i.large in us-east-1b at 0.0301 USD/h")
    spec = _spec()
    meter = CostMeter(spec, {("aws", "c7i.large"): 0.0893, ("aws", "c7g.medium"): 0.0363})
    meter.sources = {
        ("aws", "c7i.large"): ("config", None),
        ("aws", "c7g.medium"): ("config", None),
    }
    start = datetime.now(UTC) - timedelta(hours=1)
    meter.launched["aws"] = start
    unpriced = {e.alias: e for e in meter.entries(now=start + timedelta(hours=1))}
    assert unpriced["spotty"].usd_per_hour == 0.0893  # before the lookup: the cap
    assert str(unpriced["spotty"].price_source).startswith("on-demand price (spot cap")
    meter.spot.update(prices)
    entries = {e.alias: e for e in meter.entries(now=start + timedelta(hours=1))}
    spot, plain = entries["spotty"], entries["c7g.medium"]
    assert (spot.capacity, spot.usd_per_hour, spot.price_source) == (
        "spot", 0.0301, "aws-spot-price-history",
    )  # fmt: skip
    assert (
        spot.usd == pytest.approx(2 * 0.0301)
        and spot.price_date == prices[("aws", "c7i.large")].date
    )
    assert (plain.capacity, plain.usd_per_hour, plain.price_source) == (
        "on-demand",
        0.0363,
        "config",
    )

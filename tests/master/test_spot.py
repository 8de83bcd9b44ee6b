"""Spot capacity (issue 27): config, the price from EC2's spot price history (boto3 over
HTTP against moto's server, with the twin's fidelity patch: moto's own answer is one
price stamped 2006), and the ledger saying which capacity ran at what price."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto.ec2.responses.spot_instances import SpotInstances
from moto.server import ThreadedMotoServer
from pydantic import ValidationError

from cloudbench.master.ledger import CostMeter
from cloudbench.master.replace import all_reclaimed, replace_spot
from cloudbench.master.spot import price_spot
from cloudbench.master.vms import Vm
from cloudbench.platform.spotprices import aws_spot_price
from cloudbench.platform.stacks import AwsSettings, Stack
from cloudbench.platform.terraform import TerraformError
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
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }.items():
        monkeypatch.setenv(key, value)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _spec(**extra: Any) -> RunSpec:
    return RunSpec.model_validate(
        {
            "ruby_version": "3.4",
            "per_instance_type": {"tasks": 2, "instances": 2},
            "aws": [
                {"instance_type": "c7i.large", "alias": "spotty", "capacity": "spot"},
                {"instance_type": "c7g.medium"},
            ],
            **extra,
        }
    )


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
        0.0301,
        "aws-spot-price-history",
        "us-east-1a",
    )
    stamped = datetime.fromisoformat(str(price.date))
    assert timedelta(minutes=50) < datetime.now(UTC) - stamped < timedelta(minutes=70)
    assert aws_spot_price("c7i.large", "us-east-1z", REGION) is None  # no such zone


def test_launched_spot_vms_are_priced_and_the_ledger_says_spot(moto_url: str) -> None:
    outputs = {
        "instances": {
            "spotty-0": {
                "id": "i-1",
                "instance_type": "c7i.large",
                "alias": "spotty",
                "capacity": "spot",
                "zone": "us-east-1b",
            },
            "c7g.medium-0": {
                "id": "i-2",
                "instance_type": "c7g.medium",
                "alias": "c7g.medium",
                "capacity": "on-demand",
                "zone": "us-east-1b",
            },
        }
    }
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
        "spot",
        0.0301,
        "aws-spot-price-history",
    )
    assert (
        spot.usd == pytest.approx(2 * 0.0301)
        and spot.price_date == prices[("aws", "c7i.large")].date
    )
    assert (plain.capacity, plain.usd_per_hour, plain.price_source) == (
        "on-demand",
        0.0363,
        "config",
    )
    # A replacement VM bought on-demand half an hour before the end: its hours at the
    # on-demand price, the line kept with the entry.
    meter.replaced("aws", "c7i.large", 1, "on-demand", "spotty: replaced as on-demand")
    meter.extra[("aws", "c7i.large")][0] = (start + timedelta(minutes=30), 1, "on-demand")
    spot = {e.alias: e for e in meter.entries(now=start + timedelta(hours=1))}["spotty"]
    assert spot.vms == 3 and spot.instance_hours == pytest.approx(2.5)
    assert spot.usd == pytest.approx(2 * 0.0301 + 0.5 * 0.0893)
    assert spot.notes == ["spotty: replaced as on-demand"]


class _Stack(Stack):
    """Records applies instead of running Terraform (the twin test runs the real one:
    tests/twin/test_e2e.py); the first apply can fail as EC2's refusal does."""

    refuse_first = False

    def apply(self, targets: Sequence[str] = ()) -> None:
        calls.append((list(targets), json.loads(json.dumps(self.variables["instance_types"]))))
        if self.refuse_first and len(calls) == 1:
            raise TerraformError("apply", 1, "Error: InsufficientInstanceCapacity: no spot")


calls: list[tuple[list[str], list[dict[str, Any]]]] = []


def _vm(alias: str, cause: str | None) -> Vm:
    vm = Vm("aws", alias, f"i-{len(cause or '')}")
    vm.failed_at, vm.cause = (1.0, cause) if cause else (None, None)
    return vm


def test_reclaimed_spot_vms_are_replaced_on_demand_when_spot_is_refused(tmp_path: Path) -> None:
    preempted = "boot/runner error: preempted: EC2 spot interruption notice: terminate at T"
    assert all_reclaimed([_vm("s", preempted), _vm("s", preempted + "!")])
    assert not all_reclaimed([_vm("s", preempted), _vm("s", "vanished: EC2 reports it x")])
    assert not all_reclaimed([_vm("s", None)])
    types = [
        {
            "instance_type": "c7i.large",
            "alias": "s",
            "instances": 2,
            "capacity": "spot",
            "max_price": 0.05,
        },
        {
            "instance_type": "c7g.medium",
            "alias": "o",
            "instances": 1,
            "capacity": "on-demand",
            "max_price": None,
        },
    ]
    stack = _Stack("aws", tmp_path, tmp_path / "log", AwsSettings(), {"instance_types": types})
    calls.clear()
    assert replace_spot(stack, "o") is None and not calls  # not spot: nothing to replace
    done = replace_spot(stack, "s")
    assert done is not None and (done.capacity, done.vms) == ("spot", 2)
    assert calls == [(['aws_instance.runner["s-0"]', 'aws_instance.runner["s-1"]'], types)]
    calls.clear()
    stack.refuse_first = True
    done = replace_spot(stack, "s")
    assert done is not None and done.capacity == "on-demand"
    assert "EC2 refused spot capacity" in done.line
    (first, second) = calls
    assert first[1][0]["capacity"] == "spot" and second[1][0]["capacity"] == "on-demand"
    assert second[1][0]["max_price"] is None and second[1][1] == types[1]

"""Price resolution: file, config, AWS Price List and Azure Retail Prices, cache, offline.

The AWS and Azure APIs cannot be reached from here and moto implements no `pricing`
service, so both are local HTTP stand-ins (tests/platform/standins.py) speaking the real
wire formats; boto3 and httpx talk to them over real HTTP.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import ValidationError

from cloudbench.platform.prices import Price, PriceResolver, PricesFileError
from cloudbench.protocol import RunSpec
from tests.platform.standins import aws_product, serve


def resolve_price(
    provider: str, instance_type: str, region: str | None, **options: Any
) -> Price | None:
    """One type's price through a PriceResolver made for it (what reports do per run)."""
    return PriceResolver(**options).resolve(provider, instance_type, region)


def test_csv_file_region_row_wins_over_regionless(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(
        "provider,instance_type,region,usd_per_hour,source,date\n"
        "aws,c7g.medium,,0.04,list,2026-01-01\n"
        "aws,c7g.medium,eu-west-1,0.0397,aws page,2026-11-01\n"
    )
    eu = resolve_price("aws", "c7g.medium", "eu-west-1", prices_file=path, offline=True)
    us = resolve_price("aws", "c7g.medium", "us-east-1", prices_file=path, offline=True)
    assert eu == Price("aws", "c7g.medium", "eu-west-1", 0.0397, "aws page", "2026-11-01")
    assert us is not None and us.usd_per_hour == 0.04 and us.region is None


def test_json_file_and_default_source(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {"prices": [{"provider": "local", "instance_type": "local", "usd_per_hour": "0.5"}]}
        )
    )
    price = resolve_price("local", "local", None, prices_file=path)
    assert price == Price("local", "local", None, 0.5, "file:p.json", None)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("provider,instance_type\naws,x\n", "header row"),
        ("provider,instance_type,region,usd_per_hour\naws,x,,-1\n", "line 2: usd_per_hour must be"),
        ("provider,instance_type,region,usd_per_hour\naws,x,,abc\n", "is not a number"),
        ('[{"provider": "aws", "usd_per_hour": 1}]', "missing 'instance_type'"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_bad_prices_file_names_the_problem(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(PricesFileError, match=needle):
        PriceResolver(prices_file=path)


def test_config_prices_with_and_without_provider_prefix() -> None:
    config = {"c7g.medium": 0.0363, "azure/Standard_D2pls_v6": 0.0424}
    aws = resolve_price("aws", "c7g.medium", "us-east-1", config_prices=config, offline=True)
    az = resolve_price("azure", "Standard_D2pls_v6", "eastus", config_prices=config, offline=True)
    assert aws is not None and (aws.usd_per_hour, aws.source) == (0.0363, "config")
    assert az is not None and az.usd_per_hour == 0.0424
    # The prefix binds: an AWS type of that name is not priced by the Azure entry.
    assert (
        resolve_price("aws", "Standard_D2pls_v6", "x", config_prices=config, offline=True) is None
    )


def test_file_beats_config(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("provider,instance_type,region,usd_per_hour\naws,c7g.medium,,0.05\n")
    price = resolve_price(
        "aws",
        "c7g.medium",
        "us-east-1",
        prices_file=path,
        config_prices={"c7g.medium": 0.0363},
        offline=True,
    )
    assert price is not None and price.usd_per_hour == 0.05


def test_offline_and_local_have_no_price(tmp_path: Path) -> None:
    assert resolve_price("aws", "c7g.medium", "us-east-1", offline=True) is None
    # A local machine has no public price; nothing is looked up for it.
    assert resolve_price("local", "local", None, cache_dir=tmp_path) is None


def test_aws_price_list_query_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    def handler(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, object]]:
        return 200, {"FormatVersion": "aws_v1", "PriceList": [aws_product("c7g.medium", "0.0363")]}

    with serve(handler) as (url, seen):
        resolver = PriceResolver(cache_dir=tmp_path, aws_endpoint_url=url)
        first = resolver.resolve("aws", "c7g.medium", "eu-west-1")
        second = resolver.resolve("aws", "c7g.medium", "eu-west-1")
    today = datetime.now(UTC).date().isoformat()
    assert first == Price("aws", "c7g.medium", "eu-west-1", 0.0363, "aws-price-list", today)
    assert second == first and len(seen) == 1  # the second came from the disk cache
    _, headers, body = seen[0]
    assert headers["x-amz-target"] == "AWSPriceListService.GetProducts"
    request = json.loads(body)
    filters = {f["Field"]: f["Value"] for f in request["Filters"]}
    assert request["ServiceCode"] == "AmazonEC2"
    assert filters["instanceType"] == "c7g.medium" and filters["regionCode"] == "eu-west-1"
    assert (filters["operatingSystem"], filters["tenancy"]) == ("Linux", "Shared")
    cached = json.loads((tmp_path / "prices.json").read_text())
    assert cached["aws/eu-west-1/c7g.medium"]["date"] == today


def test_aws_error_is_no_price(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    def handler(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, object]]:
        return 400, {"__type": "AccessDeniedException", "message": "no"}

    with serve(handler) as (url, _):
        resolver = PriceResolver(cache_dir=tmp_path, aws_endpoint_url=url)
        assert resolver.resolve("aws", "c7g.medium", "us-east-1") is None
    assert not (tmp_path / "prices.json").exists()


def test_azure_retail_prices_skips_windows_and_spot(tmp_path: Path) -> None:
    items = [
        {
            "retailPrice": 0.30,
            "unitOfMeasure": "1 Hour",
            "productName": "Dpls v6 Series Windows",
            "skuName": "D2pls v6",
        },
        {
            "retailPrice": 0.01,
            "unitOfMeasure": "1 Hour",
            "productName": "Dpls v6 Series",
            "skuName": "D2pls v6 Spot",
        },
        {
            "retailPrice": 0.0424,
            "unitOfMeasure": "1 Hour",
            "productName": "Dpls v6 Series",
            "skuName": "D2pls v6",
        },
    ]

    def handler(path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, object]]:
        return 200, {"Items": items, "NextPageLink": None}

    with serve(handler) as (url, seen):
        resolver = PriceResolver(cache_dir=tmp_path, azure_url=url + "/api/retail/prices")
        price = resolver.resolve("azure", "Standard_D2pls_v6", "eastus")
    assert price is not None and (price.usd_per_hour, price.source) == (0.0424, "azure-retail")
    query = parse_qs(urlparse(seen[0][0]).query)["$filter"][0]
    assert "armSkuName eq 'Standard_D2pls_v6'" in query and "armRegionName eq 'eastus'" in query


def test_azure_unreachable_is_no_price(tmp_path: Path) -> None:
    resolver = PriceResolver(cache_dir=tmp_path, azure_url="http://127.0.0.1:9/prices")
    assert resolver.resolve("azure", "Standard_D2pls_v6", "eastus") is None


def test_config_model_accepts_prices() -> None:
    base = {"ruby_version": "3.4.7", "per_instance_type": {"tasks": 1}, "aws": ["c7g.medium"]}
    spec = RunSpec.model_validate(
        {**base, "prices": {"c7g.medium": 0.0363, "azure/Standard_D2pls_v6": 0.0424}}
    )
    assert spec.prices["azure/Standard_D2pls_v6"] == 0.0424 and spec.ignored == []
    with pytest.raises(ValidationError, match="greater than 0"):
        RunSpec.model_validate({**base, "prices": {"c7g.medium": 0}})

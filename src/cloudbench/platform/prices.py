"""USD per hour for an instance type, from the first source that knows it.

Order: a prices file (CSV or JSON), the run config's ``prices`` object, the AWS Price
List API (boto3) or Azure's public Retail Prices API (httpx). Looked-up prices are
cached on disk with their fetch date. Nothing found (or offline) means ``None``: a price
is never guessed.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

logger = logging.getLogger(__name__)

FILE_COLUMNS = ("provider", "instance_type", "region", "usd_per_hour", "source", "date")
AZURE_RETAIL_URL = "https://prices.azure.com/api/retail/prices"
# The Price List API is served from a few regions only; us-east-1 answers for all.
AWS_PRICING_REGION = "us-east-1"
CACHE_MAX_AGE = timedelta(days=30)
_TIMEOUT = 10.0


class PricesFileError(ValueError):
    """A prices file that cannot be used; the message names the file, row and fix."""


@dataclass(frozen=True)
class Price:
    provider: str
    instance_type: str
    region: str | None
    usd_per_hour: float
    source: str  # e.g. "file:prices.csv", "config", "aws-price-list", "azure-retail"
    date: str | None  # ISO date the price was stated or fetched


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cloudbench" / "prices"


# ---------------------------------------------------------------- prices file


def _positive_price(value: Any, where: str) -> float:
    try:
        price = float(value)
    except (TypeError, ValueError):
        raise PricesFileError(f"{where}: usd_per_hour {value!r} is not a number") from None
    if not math.isfinite(price) or price <= 0:
        raise PricesFileError(f"{where}: usd_per_hour must be a positive number, got {value!r}")
    return price


def _row_to_price(row: Mapping[str, Any], where: str, default_source: str) -> Price:
    missing = [c for c in ("provider", "instance_type", "usd_per_hour") if not row.get(c)]
    if missing:
        raise PricesFileError(
            f"{where}: missing {missing[0]!r} (columns: {', '.join(FILE_COLUMNS)})"
        )
    return Price(
        provider=str(row["provider"]).strip(),
        instance_type=str(row["instance_type"]).strip(),
        region=(str(row.get("region") or "").strip() or None),
        usd_per_hour=_positive_price(row["usd_per_hour"], where),
        source=str(row.get("source") or "").strip() or default_source,
        date=(str(row.get("date") or "").strip() or None),
    )


def load_prices_file(path: Path) -> list[Price]:
    """Rows of a CSV (header row) or JSON (list, or {"prices": [...]}) prices file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PricesFileError(f"{path}: cannot read prices file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise PricesFileError(
            f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV or JSON"
        ) from None
    default_source = f"file:{path.name}"
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PricesFileError(
                f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})"
            ) from None
        rows = data.get("prices") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise PricesFileError(
                f"{path}: expected a list of objects with {', '.join(FILE_COLUMNS)}"
            )
        return [
            _row_to_price(r, f"{path} entry {i + 1}", default_source) for i, r in enumerate(rows)
        ]
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "usd_per_hour" not in reader.fieldnames:
        raise PricesFileError(f"{path}: CSV needs a header row: {','.join(FILE_COLUMNS)}")
    return [_row_to_price(r, f"{path} line {i + 2}", default_source) for i, r in enumerate(reader)]


def _from_rows(
    rows: list[Price], provider: str, instance_type: str, region: str | None
) -> Price | None:
    matches = [r for r in rows if r.provider == provider and r.instance_type == instance_type]
    # A row for the run's region wins over a region-less row.
    for row in matches:
        if region is not None and row.region == region:
            return row
    for row in matches:
        if row.region is None:
            return row
    return None


def _from_config(
    prices: Mapping[str, float], provider: str, instance_type: str, region: str | None
) -> Price | None:
    for key in (f"{provider}/{instance_type}", instance_type):
        if key in prices:
            return Price(provider, instance_type, region, float(prices[key]), "config", None)
    return None


# ---------------------------------------------------------------- on-line look-ups


def _aws_price(instance_type: str, region: str, endpoint_url: str | None) -> float | None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    filters = {
        "instanceType": instance_type,
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
    }
    try:
        client = boto3.client("pricing", region_name=AWS_PRICING_REGION, endpoint_url=endpoint_url)
        response = client.get_products(
            ServiceCode="AmazonEC2",
            Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
            MaxResults=10,
        )
    except (BotoCoreError, ClientError) as exc:
        logger.warning("AWS Price List lookup for %s in %s failed: %s", instance_type, region, exc)
        return None
    prices = [p for item in response.get("PriceList", []) if (p := _on_demand_usd(item))]
    return min(prices) if prices else None


def _on_demand_usd(item: str | Mapping[str, Any]) -> float | None:
    product = json.loads(item) if isinstance(item, str) else item
    for term in (product.get("terms", {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            usd = float(dim.get("pricePerUnit", {}).get("USD", "0") or 0)
            if usd > 0 and str(dim.get("unit", "Hrs")).startswith("Hr"):
                return usd
    return None


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, httpx.TransportError)


@retry(
    retry=retry_if_exception(_transient),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)
def _azure_items(url: str, params: dict[str, str]) -> list[dict[str, Any]]:
    with httpx.Client(timeout=_TIMEOUT) as client:
        response = client.get(url, params=params)
        response.raise_for_status()
        items = response.json().get("Items", [])
    return [i for i in items if isinstance(i, dict)]


def _azure_price(instance_type: str, region: str, url: str) -> float | None:
    query = (
        "serviceName eq 'Virtual Machines' and priceType eq 'Consumption' "
        f"and armSkuName eq '{instance_type}' and armRegionName eq '{region}'"
    )
    try:
        items = _azure_items(url, {"$filter": query, "currencyCode": "USD"})
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning(
            "Azure retail price lookup for %s in %s failed: %s", instance_type, region, exc
        )
        return None
    linux = [
        float(i["retailPrice"])
        for i in items
        if i.get("unitOfMeasure") == "1 Hour"
        and "Windows" not in str(i.get("productName", ""))
        and not any(w in str(i.get("skuName", "")) for w in ("Spot", "Low Priority"))
        and float(i.get("retailPrice") or 0) > 0
    ]
    return min(linux) if linux else None


class _Cache:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "prices.json"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Price | None:
        entry = self._load().get(key)
        try:
            price = Price(**entry) if isinstance(entry, dict) else None
        except TypeError:
            return None
        if price is None or price.date is None:
            return None
        if datetime.now(UTC).date() - date.fromisoformat(price.date) > CACHE_MAX_AGE:
            return None
        return price

    def put(self, key: str, price: Price) -> None:
        data = self._load()
        data[key] = asdict(price)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.path)


# ---------------------------------------------------------------- resolver


@dataclass
class PriceResolver:
    """Resolves many types with one loaded prices file; see the module docstring."""

    prices_file: Path | None = None
    config_prices: Mapping[str, float] | None = None
    offline: bool = False
    cache_dir: Path | None = None
    aws_endpoint_url: str | None = None
    azure_url: str = AZURE_RETAIL_URL
    # Prices saved with the results (a results folder's prices.json): after the file and
    # the config, before any look-up.
    saved: list[Price] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rows = load_prices_file(self.prices_file) if self.prices_file else []

    def resolve(self, provider: str, instance_type: str, region: str | None) -> Price | None:
        found = _from_rows(self._rows, provider, instance_type, region)
        if found is None and self.config_prices:
            found = _from_config(self.config_prices, provider, instance_type, region)
        if found is None and self.saved:
            found = _from_rows(self.saved, provider, instance_type, region)
        if found is None and not self.offline and region and provider in ("aws", "azure"):
            found = self._lookup(provider, instance_type, region)
        return found

    def _lookup(self, provider: str, instance_type: str, region: str) -> Price | None:
        cache = _Cache(self.cache_dir or default_cache_dir())
        key = f"{provider}/{region}/{instance_type}"
        cached = cache.get(key)
        if cached is not None:
            return cached
        if provider == "aws":
            usd, source = _aws_price(instance_type, region, self.aws_endpoint_url), "aws-price-list"
        else:
            usd, source = _azure_price(instance_type, region, self.azure_url), "azure-retail"
        if usd is None:
            return None
        price = Price(
            provider, instance_type, region, usd, source, datetime.now(UTC).date().isoformat()
        )
        try:
            cache.put(key, price)
        except OSError as exc:  # an unwritable cache costs a look-up next time, nothing else
            logger.warning("cannot write price cache %s: %s", cache.path, exc)
        return price


SAVED_PRICES = "prices.json"  # in a results folder: the prices that priced its report
SAVED_FORMAT_VERSION = 1


def save_prices(path: Path, prices: list[Price]) -> None:
    """Write prices as a prices file (JSON, readable by load_prices_file), source and
    date kept, so a later report of the same results uses the same prices."""
    rows = [asdict(p) for p in sorted(prices, key=lambda p: (p.provider, p.instance_type))]
    data = {"format_version": SAVED_FORMAT_VERSION, "prices": rows}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)

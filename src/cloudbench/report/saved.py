"""Prices travel with the results: what priced a report is saved in its results folder
(prices.json, a prices file) and used by the next report of that folder unless --prices
or --config say otherwise."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloudbench.platform.prices import (
    SAVED_PRICES,
    Price,
    PricesFileError,
    load_prices_file,
    save_prices,
)
from cloudbench.report.errors import ReportInputError
from cloudbench.report.merge import ResultSet

logger = logging.getLogger(__name__)


def saved_prices(results_dirs: Sequence[Path]) -> list[Price]:
    """The prices saved with these results folders (prices.json), if any."""
    rows = []
    for folder in results_dirs:
        path = folder / SAVED_PRICES
        if path.is_file():
            try:
                rows += load_prices_file(path)
            except PricesFileError as exc:
                raise ReportInputError(f"{exc} (delete it or give --prices)") from None
    return rows


def keep_prices(results: ResultSet, summary: dict[str, Any], *, overridden: bool) -> None:
    """Save the prices this report used in each results folder that has none yet (or
    all of them when --prices / --config chose them), so that the next report of the
    folder prices it the same way without being told again."""
    by_alias = {t["alias"]: t for t in summary["instance_types"]}
    for run in results.runs:
        path = run.path / SAVED_PRICES
        if run.run_id is None or (path.is_file() and not overridden):
            continue  # a bare ruby-bench folder is not ours to write in
        used = []
        for alias in run.aliases:
            t = by_alias.get(alias)
            if t is not None and t["usd_per_hour"] is not None:
                used.append(
                    Price(
                        t["provider"],
                        t["instance_type"],
                        t["region"],
                        t["usd_per_hour"],
                        t["price_source"],
                        t["price_date"],
                    )
                )
        if used:
            try:
                save_prices(path, used)
            except OSError as exc:
                logger.warning("cannot save the prices in %s: %s", path, exc)

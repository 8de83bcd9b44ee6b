"""Building a report: read, merge, compute the statistics, write the files."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudbench.platform.prices import PriceResolver, PricesFileError
from cloudbench.report.answer import answer
from cloudbench.report.compare import compare, sentences
from cloudbench.report.errors import ReportInputError
from cloudbench.report.load import load_run
from cloudbench.report.merge import merge
from cloudbench.report.render import write
from cloudbench.report.saved import keep_prices, saved_prices
from cloudbench.report.summary import DEFAULT_SEED, Options, build_summary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    summary: dict[str, Any]
    index: Path
    out: Path


def build_report(
    results_dirs: Sequence[Path],
    *,
    out: Path | None = None,
    baseline: str | None = None,
    prices_file: Path | None = None,
    config_prices: Mapping[str, float] | None = None,
    offline: bool = False,
    allow_mixed: bool = False,
    seed: int = DEFAULT_SEED,
    against: Sequence[Path] = (),
    headline: str | None = None,
) -> Report:
    """Read results folders, compute the statistics and write the report files."""
    if not results_dirs:
        raise ReportInputError("give at least one RESULTS_DIR (a results/<run-id>/ folder)")
    try:
        resolver = PriceResolver(prices_file, config_prices, offline)
    except PricesFileError as exc:
        raise ReportInputError(f"--prices {exc}") from None
    resolver.saved = saved_prices(results_dirs)
    results = merge([load_run(p) for p in results_dirs], allow_mixed=allow_mixed)
    if not results.tasks:
        raise ReportInputError(
            f"{results_dirs[0]}: no task with usable results (every task failed or was excluded)"
        )
    target = out or results_dirs[0] / "report"
    # numpy/scipy warn about empty or tiny slices (e.g. merged runs with different
    # benchmark sets); the report says such things in words (summary `notes`), so the
    # libraries' own warnings are kept off the terminal and only logged at debug level.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = build_summary(results, Options(baseline, resolver, seed, headline))
        summary["answer"] = answer(results, summary)
        if against:
            earlier = merge([load_run(p) for p in against], allow_mixed=True)
            summary["comparison"] = compare(results, earlier, summary["headline_executable"])
            summary["comparison"]["sentences"] = sentences(summary["comparison"])
        index = write(results, summary, target)
    for warning in caught:
        logger.debug("library warning while building the report: %s", warning.message)
    keep_prices(results, summary, overridden=prices_file is not None or bool(config_prices))
    return Report(summary, index, target)

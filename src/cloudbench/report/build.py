"""Building a report: read, merge, compute the statistics, write the files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudbench.platform.prices import PriceResolver, PricesFileError
from cloudbench.report.errors import ReportInputError
from cloudbench.report.load import load_run
from cloudbench.report.merge import merge
from cloudbench.report.render import write
from cloudbench.report.summary import DEFAULT_SEED, Options, build_summary


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
    headline: str | None = None,
) -> Report:
    """Read results folders, compute the statistics and write the report files."""
    if not results_dirs:
        raise ReportInputError("give at least one RESULTS_DIR (a results/<run-id>/ folder)")
    try:
        resolver = PriceResolver(prices_file, config_prices, offline)
    except PricesFileError as exc:
        raise ReportInputError(f"--prices {exc}") from None
    results = merge([load_run(p) for p in results_dirs], allow_mixed=allow_mixed)
    if not results.tasks:
        raise ReportInputError(
            f"{results_dirs[0]}: no task with usable results (every task failed or was excluded)"
        )
    summary = build_summary(results, Options(baseline, resolver, seed, headline))
    target = out or results_dirs[0] / "report"
    index = write(results, summary, target)
    return Report(summary, index, target)

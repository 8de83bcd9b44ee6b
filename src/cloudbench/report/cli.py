"""The `cloudbench report` command."""

from __future__ import annotations

import json
import sys
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from cloudbench.report.errors import ReportError

if TYPE_CHECKING:
    from cloudbench.report.build import Report

# cloudbench.report (numpy, scipy, jinja2, plotly) is imported when the command runs:
# `cloudbench --help` and every other subcommand must not pay seconds for it.


def print_ranking(console: Console, report: Report) -> None:
    from cloudbench.report.render import RANKING_HEADER, geomean_over, ranking_rows

    summary = report.summary
    table = Table(title=f"ranking vs {summary['baseline']} ({summary['headline_executable']}, "
                  "geomean speedup, 95% CI)")  # fmt: skip
    for column in RANKING_HEADER:
        table.add_column(column)
    for row in ranking_rows(summary):
        table.add_row(*row)
    console.print(table)
    console.print(f"geomean over {geomean_over(summary)}", soft_wrap=True)
    from cloudbench.report.matrix import speedup_lines

    console.print(f"headline: {summary['headline_executable']} ({summary['headline_chosen']})")
    for line in speedup_lines(summary["matrix"]):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if not any(t["usd_per_hour"] is not None for t in summary["instance_types"]):
        console.print('no price for any instance type (give --prices FILE or config "prices")')
    console.print(f"report: {report.index}")


def _config_prices(path: Path | None) -> dict[str, float] | None:
    if path is None:
        return None
    from cloudbench.protocol import RunSpec

    try:
        spec = RunSpec.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ReportError(f"--config {path}: {str(exc).splitlines()[0]}") from None
    return dict(spec.prices)


def report(
    results_dirs: list[Path] = typer.Argument(..., help="results/<run-id>/ folders to report on."),
    baseline: str | None = typer.Option(None, "--baseline", help="Alias to compare against "
                                        "(default: the first in the manifest)."),
    prices: Path | None = typer.Option(None, "--prices", help="CSV or JSON: provider, "
                                       "instance_type, region, usd_per_hour, source, date."),
    config: Path | None = typer.Option(None, "--config", help="The run's config file, for "
                                       "its \"prices\"."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RESULTS_DIR/report)."),  # noqa: E501
    offline: bool = typer.Option(False, "--offline", help="Never ask the public price APIs."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed", help="Merge runs whose Ruby, "
                                     "ruby-bench commit or settings differ."),
    open_browser: bool = typer.Option(False, "--open", help="Open index.html in a browser."),
    headline: str | None = typer.Option(None, "--headline", help="RUBY/EXECUTABLE to rank "
                                        "by, e.g. 4.0/zjit (default: the newest Ruby's "
                                        "fastest verified JIT)."),
) -> None:  # fmt: skip
    """Rank instance types by speed and by speed per dollar, with honest intervals."""
    # Piped (e.g. under `cloudbench run`): wide enough that the table stays one line a row.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    from cloudbench.report.build import build_report

    try:
        built = build_report(
            results_dirs, out=out, baseline=baseline, prices_file=prices,
            config_prices=_config_prices(config), offline=offline, allow_mixed=allow_mixed,
            headline=headline,
        )  # fmt: skip
    except ReportError as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    print_ranking(console, built)
    if open_browser:
        webbrowser.open(built.index.resolve().as_uri())

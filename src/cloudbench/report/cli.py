"""The `cloudbench report` command."""

from __future__ import annotations

import json
import os
import sys
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from cloudbench.report.errors import ReportError

if TYPE_CHECKING:
    from cloudbench.report.build import Report

# cloudbench.report (numpy, scipy, jinja2, plotly) is imported when the command runs:
# `cloudbench --help` and every other subcommand must not pay seconds for it.


def print_ranking(console: Console, report: Report) -> None:
    from cloudbench.report.matrix import speedup_lines
    from cloudbench.report.render import geomean_over
    from cloudbench.report.terminal import print_answer

    summary = report.summary
    print_answer(console, summary)
    for line in (summary.get("comparison") or {}).get("sentences", []):
        console.print(line, markup=False, highlight=False)
    console.print(f"geomean over {geomean_over(summary)}", markup=False, highlight=False)
    chosen = f"headline: {summary['headline_executable']} ({summary['headline_chosen']})"
    console.print(chosen, markup=False, highlight=False)
    for line in speedup_lines(summary["matrix"]):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report.index}", markup=False, highlight=False, soft_wrap=True)


def _config_prices(path: Path | None) -> dict[str, float] | None:
    if path is None:
        return None
    from pydantic import ValidationError

    from cloudbench.protocol import RunSpec

    fix = "give the run's JSON config file"
    try:
        spec = RunSpec.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ReportError(f"--config {path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ReportError(f"--config {path}: not UTF-8 text (byte {exc.start}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"--config {path}: not valid JSON (line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg}); {fix}"
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ReportError(f"--config {path}: {where}: {first['msg']}") from None
    return dict(spec.prices)


def report(
    results_dirs: list[Path] = typer.Argument(..., help="results/<run-id>/ folders to report on."),
    baseline: str | None = typer.Option(
        None, "--baseline", help="Alias to compare against (default: the first in the manifest)."
    ),
    prices: Path | None = typer.Option(
        None,
        "--prices",
        help="CSV or JSON: provider, instance_type, region, usd_per_hour, source, date.",
    ),
    config: Path | None = typer.Option(
        None, "--config", help='The run\'s config file, for its "prices".'
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default RESULTS_DIR/report)."
    ),
    offline: bool = typer.Option(False, "--offline", help="Never ask the public price APIs."),
    allow_mixed: bool = typer.Option(
        False, "--allow-mixed", help="Merge runs whose Ruby, ruby-bench commit or settings differ."
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open index.html in a browser."),
    against: list[Path] = typer.Option(
        [],
        "--against",
        help="An earlier run (folder or run id in ./results) to compare with; repeatable.",
    ),
    headline: str | None = typer.Option(
        None,
        "--headline",
        help="RUBY/EXECUTABLE to rank "
        "by, e.g. 4.0/zjit (default: the newest Ruby's "
        "fastest verified JIT).",
    ),
) -> None:
    """Rank instance types by speed and by speed per dollar, with honest intervals."""
    # Piped without COLUMNS: wide enough that the table stays one line a row.
    sized = sys.stdout.isatty() or "COLUMNS" in os.environ
    console = Console() if sized else Console(width=160)
    from cloudbench.report.build import build_report
    from cloudbench.report.compare import resolve_run

    try:
        built = build_report(
            [resolve_run(p) for p in results_dirs],
            out=out,
            baseline=baseline,
            prices_file=prices,
            config_prices=_config_prices(config),
            offline=offline,
            allow_mixed=allow_mixed,
            against=[resolve_run(p) for p in against],
            headline=headline,
        )
    except ReportError as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    print_ranking(console, built)
    if open_browser:
        webbrowser.open(built.index.resolve().as_uri())


def history(
    results_dir: Path = typer.Argument(Path("results"), help="The results directory."),
) -> None:
    """List the runs in RESULTS_DIR with their answer; flag types that moved between runs."""
    from cloudbench.report.history import history as runs

    console = Console()
    try:
        lines = runs(results_dir)
    except ReportError as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if not lines:
        console.print(f"no runs in {results_dir} (folders with a manifest.json)")
    for line in lines:
        console.print(
            f"run {line.run_id} ({line.started}): {', '.join(line.types) or '-'}",
            markup=False,
            highlight=False,
            style="bold",
        )
        console.print(f"  {line.answer}", markup=False, highlight=False)
        for moved in line.moved:
            console.print(f"  MOVED: {moved}", markup=False, highlight=False, style="yellow")

"""The `cloudbench` command line."""

from __future__ import annotations

import logging
import os

import typer

from cloudbench.master.cli import run, status
from cloudbench.nuke.cli import nuke
from cloudbench.orchestrator.cli import app as orchestrator_app
from cloudbench.report.cli import report
from cloudbench.runner.cli import runner as runner_command

app = typer.Typer(
    help="Run ruby-bench on many instance types and collect every result.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(orchestrator_app, name="orchestrator")
app.command()(run)
app.command()(status)
app.command()(nuke)
app.command()(report)
# The runner module is one callback; registered as a command it is `cloudbench runner`.
app.command(name="runner")(runner_command)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    level = logging.DEBUG if verbose else os.environ.get("CLOUDBENCH_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:  # alembic narrates every plugin and revision at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)

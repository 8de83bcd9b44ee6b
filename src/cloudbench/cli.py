"""The `cloudbench` command line.

Each subcommand's module is imported only when that subcommand runs: `cloudbench runner`
on a benchmark machine does not load FastAPI, the master or the report's numpy/scipy
(about 0.3 s of CPU per process start, and the suite starts hundreds). `--help` and a
mistyped command load them all, to list and suggest.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer

# command name -> (module, attribute): a typer app (a group) or a command function.
LAZY: dict[str, tuple[str, str]] = {
    "orchestrator": ("cloudbench.orchestrator.cli", "app"),
    "run": ("cloudbench.master.cli", "run"),
    "status": ("cloudbench.master.cli", "status"),
    "nuke": ("cloudbench.nuke.cli", "nuke"),
    "report": ("cloudbench.report.cli", "report"),
    "history": ("cloudbench.report.cli", "history"),
    "runner": ("cloudbench.runner.cli", "runner"),
    "benchmark-image": ("cloudbench.runner.image_cli", "benchmark_image"),
}


def wanted(argv: Sequence[str]) -> list[str]:
    """The commands to load for this command line: the one it names, or (for --help, no
    command or a mistyped one) all of them, so help lists them and a typo gets suggestions.
    The top level's only option is a flag (-v), so the first other word is the command."""
    name = next((arg for arg in argv if not arg.startswith("-")), None)
    return [name] if name in LAZY else list(LAZY)


class LazyTyper(typer.Typer):
    """A Typer that adds its subcommands only when called, and only those needed."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        argv = kwargs.get("args", args[0] if args else None)
        for name in wanted(sys.argv[1:] if argv is None else list(argv)):
            self.load(name)
        return super().__call__(*args, **kwargs)

    def load(self, name: str) -> None:
        groups = [info.name for info in self.registered_groups]
        if name in groups or name in [info.name for info in self.registered_commands]:
            return
        module, attribute = LAZY[name]
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            self.add_typer(target, name=name)
        else:  # a function: one command of its own
            self.command(name=name)(target)


app = LazyTyper(
    help="Run ruby-bench on many instance types and collect every result.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: rich's boxed layout cuts option names at 80 columns ("--orchestrator-…").
    rich_markup_mode=None,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    level = logging.DEBUG if verbose else os.environ.get("CLOUDBENCH_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:  # alembic narrates every plugin and revision at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)

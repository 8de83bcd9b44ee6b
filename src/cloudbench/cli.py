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

import typer

# typer 0.29 builds its groups on its own copy of click; subclasses must use its types.
from typer._click import Command, Context
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

# command name -> (module, attribute): a typer app (a group) or a command function.
LAZY: dict[str, tuple[str, str]] = {
    "orchestrator": ("cloudbench.orchestrator.cli", "app"),
    "run": ("cloudbench.master.cli", "run"),
    "status": ("cloudbench.master.cli", "status"),
    "nuke": ("cloudbench.nuke.cli", "nuke"),
    "report": ("cloudbench.report.cli", "report"),
    "history": ("cloudbench.report.cli", "history"),
    "runner": ("cloudbench.runner.cli", "runner"),
}


def _load(name: str) -> Command:
    module, attribute = LAZY[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command: Command = typer.main.get_group(target)
    else:  # a function: one command of its own
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                             rich_markup_mode=None)  # fmt: skip
        single.command(name=name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    def list_commands(self, ctx: Context) -> list[str]:
        return list(LAZY)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in LAZY and cmd_name not in self.commands:
            self.add_command(_load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except UsageError:
            for name in LAZY:  # so that "did you mean" knows every command
                self.get_command(ctx, name)
            return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyGroup,
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

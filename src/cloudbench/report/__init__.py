"""`cloudbench report`: which instance type runs Ruby fastest, and fastest per dollar.

`build_report` and `Report` load on first use (numpy, scipy, jinja2 and plotly take
seconds to import): the `cloudbench` CLI imports this package for every subcommand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudbench.report.errors import ReportError

if TYPE_CHECKING:
    from cloudbench.report.build import Report, build_report

__all__ = ["Report", "ReportError", "build_report"]


def __getattr__(name: str) -> Any:
    if name in ("Report", "build_report"):
        from cloudbench.report import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

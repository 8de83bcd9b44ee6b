"""`cloudbench history`: the runs in a results directory, each with its headline answer,
and the types whose performance moved between consecutive runs beyond their intervals."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudbench.platform.prices import PriceResolver
from cloudbench.report.answer import answer
from cloudbench.report.compare import compare, percent
from cloudbench.report.errors import ReportError, ReportInputError
from cloudbench.report.load import load_run
from cloudbench.report.merge import ResultSet, merge
from cloudbench.report.saved import saved_prices
from cloudbench.report.summary import Options, build_summary

logger = logging.getLogger(__name__)


@dataclass
class RunLine:
    run_id: str
    started: str
    types: list[str]
    answer: str
    moved: list[str]


def _started(results: ResultSet) -> str:
    starts = sorted(
        str(t.metadata["started_at"]) for t in results.tasks if t.metadata.get("started_at")
    )
    return starts[0][:16].replace("T", " ") if starts else "-"


def _runs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ReportInputError(f"{root}: not a directory (expected a results directory)")
    found = [p for p in root.iterdir() if (p / "manifest.json").is_file()]
    return sorted(
        found, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)
    )


def _headline(results: ResultSet, folder: Path) -> str:
    resolver = PriceResolver(offline=True)
    resolver.saved = saved_prices([folder])
    summary = build_summary(results, Options(None, resolver))
    said = answer(results, summary)["sentences"]
    return " ".join(s for s in said if not s.startswith("Best per dollar: not known"))


def _moved(new: ResultSet, old: ResultSet, old_id: str) -> list[str]:
    out = []
    for t in compare(new, old)["types"]:
        if t["verdict"] != "same":
            out.append(f"{t['alias']} {t['verdict']} than run {old_id}: {percent(t['change'])}")
    return out


def history(root: Path) -> list[RunLine]:
    """Every run under root, oldest first; a run that cannot be read says why."""
    lines: list[RunLine] = []
    last: dict[str, tuple[ResultSet, str]] = {}  # alias -> the latest earlier run with it
    for folder in _runs(root):
        try:
            results = merge([load_run(folder)])
            if not results.tasks:
                raise ReportInputError("no task with usable results")
            headline = _headline(results, folder)
        except ReportError as exc:
            lines.append(RunLine(folder.name, "-", [], f"not readable: {exc}", []))
            continue
        moved: list[str] = []
        earlier = {id(r): (r, i) for a in results.aliases if a in last for r, i in [last[a]]}
        for old, old_id in earlier.values():
            moved += _moved(results, old, old_id)
        lines.append(RunLine(folder.name, _started(results), results.aliases, headline, moved))
        for alias in results.aliases:
            last[alias] = (results, folder.name)
    return lines


def as_json(lines: list[RunLine]) -> list[dict[str, Any]]:
    return [vars(line) for line in lines]

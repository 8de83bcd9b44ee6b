"""Before any benchmark runs: can each Ruby run each column's engine with its options?

Each (Ruby, flags) is started once with a one-line script that prints RUBY_DESCRIPTION
and whether `RubyVM::YJIT.enabled?` / `RubyVM::ZJIT.enabled?` (not `defined?`, which is
true for ZJIT's module under --yjit too). A Ruby without the engine (3.1 has no ZJIT;
`--zjit` is an invalid option there) fails the task `executable_mismatch` with one line
naming the fix; so does an option that Ruby refuses. Tuned options cannot be read back
from any Ruby here (no API reports --yjit-mem-size and the like): they are recorded as
accepted and "not verifiable".
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloudbench.protocol.executables import ENGINE_MARK
from cloudbench.runner.columns import Column
from cloudbench.runner.executors.base import Provisioned

# (provisioned, ruby flags + ["-e", script]) -> (exit code, stdout+stderr)
Prober = Callable[[Provisioned, list[str]], tuple[int, str]]
SEP = "|cloudbench|"
SCRIPT = (
    "y = defined?(RubyVM::YJIT.enabled?) ? RubyVM::YJIT.enabled? : false; "
    "z = defined?(RubyVM::ZJIT.enabled?) ? RubyVM::ZJIT.enabled? : false; "
    f'print RUBY_DESCRIPTION, "{SEP}", y, "{SEP}", z, "\\n"'
)
NOT_VERIFIABLE = "not verifiable"


class EngineMissing(Exception):
    """One line: which Ruby lacks which engine or option, and the fix."""


@dataclass(frozen=True)
class Probe:
    exit_code: int
    description: str | None
    yjit: bool
    zjit: bool
    output: str


_cache: dict[tuple[str, str | None, str, tuple[str, ...]], Probe] = {}
_lock = threading.Lock()


def run_probe(prober: Prober, provisioned: Provisioned, flags: list[str]) -> Probe:
    """Once per Ruby and flags for the runner's life (tasks of a run ask the same)."""
    key = (provisioned.ruby_version, provisioned.image_id, provisioned.ruby, tuple(flags))
    with _lock:
        if key not in _cache:
            _cache[key] = _probe(prober, provisioned, flags)
        return _cache[key]


def _probe(prober: Prober, provisioned: Provisioned, flags: list[str]) -> Probe:
    code, output = prober(provisioned, [*flags, "-e", SCRIPT])
    line = next((ln for ln in output.splitlines() if SEP in ln), None)
    if code != 0 or line is None:
        return Probe(code, None, False, False, output.strip())
    description, yjit, zjit = [*line.split(SEP), "", ""][:3]
    return Probe(code, description.strip(), yjit.strip() == "true", zjit.strip() == "true", "")


def ruby_release(provisioned: Provisioned) -> str:
    found = re.match(r"ruby (\d+\.\d+\.\d+)", provisioned.ruby_description)
    return found.group(1) if found else provisioned.ruby_version


def _missing(jit: str, release: str) -> str:
    if jit == "zjit":
        return f"Ruby {release} has no ZJIT: ask for Ruby 4.0 or later, or drop zjit"
    return f"Ruby {release} has no YJIT: ask for a Ruby built with YJIT, or drop yjit"


def check_column(prober: Prober, provisioned: Provisioned, column: Column) -> dict[str, Any]:
    """The column's engine record for metadata, or EngineMissing."""
    release, jit = ruby_release(provisioned), column.jit
    engine = run_probe(prober, provisioned, column.spec.flags[:1])
    if jit != "interp" and not (engine.description and getattr(engine, jit)):
        raise EngineMissing(_missing(jit, release))
    if jit == "interp" and (engine.yjit or engine.zjit or engine.description is None):
        raise EngineMissing(
            f"Ruby {release} does not run without a JIT (RUBY_DESCRIPTION "
            f"{engine.description!r}, output {engine.output[:200]!r}): drop interp"
        )
    mark = ENGINE_MARK.get(jit)
    if mark and mark not in (engine.description or ""):
        raise EngineMissing(
            f"Ruby {release} reports {jit} enabled but RUBY_DESCRIPTION lacks {mark}: "
            f"{engine.description!r}; drop {jit} or use another build"
        )
    record: dict[str, Any] = {
        "ruby_description": engine.description,
        "yjit_enabled": engine.yjit,
        "zjit_enabled": engine.zjit,
        "options": {},
    }
    if column.spec.options:
        tuned = run_probe(prober, provisioned, column.spec.flags)
        if tuned.description is None:
            first = (tuned.output.splitlines() or [""])[0][:200]
            raise EngineMissing(
                f"Ruby {release} does not accept {' '.join(column.spec.options)} "
                f"(executable {column.spec.name!r}): {first}; drop or fix the option"
            )
        record["options"] = {o: NOT_VERIFIABLE for o in column.spec.options}
    return record


def check_columns(
    prober: Prober, provisioned: dict[str, Provisioned], columns: list[Column]
) -> dict[str, dict[str, Any]]:
    """label → engine record, for every column; the first problem raises EngineMissing."""
    return {c.label: check_column(prober, provisioned[c.ruby_version], c) for c in columns}

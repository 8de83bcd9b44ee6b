"""Check a task's output.json against what it claims: ASLR off, each engine where labelled.

Both facts come from ruby-bench's own records: `command_line` (it prefixes
`setarch <arch> -R` only when that works, silently dropping it otherwise) and the
`RUBY_DESCRIPTION` each benchmark process reported: `+YJIT` for yjit, `+ZJIT` for zjit,
neither for interp. (Whether `RubyVM::YJIT.enabled?` / `RubyVM::ZJIT.enabled?` is the
runner's provision-time probe, runner/engines.py.)
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudbench.protocol import AslrState
from cloudbench.protocol.executables import ENGINE_MARK


@dataclass
class Verification:
    aslr: AslrState = AslrState.unknown
    descriptions: dict[str, list[str]] = field(default_factory=dict)  # exe -> distinct
    ruby_v: dict[str, str] = field(default_factory=dict)  # exe -> `ruby -v` (metadata)
    mismatches: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)  # executables without any result

    @property
    def executables_verified(self) -> bool:
        return not self.mismatches and not self.unverified and bool(self.descriptions)

    @property
    def aslr_disabled(self) -> bool:
        return self.aslr is AslrState.disabled


def aslr_disabled_in(command_line: str) -> bool:
    """`setarch x86_64 -R taskset -c 0 ruby ...`: setarch comes first, with -R."""
    try:
        words = shlex.split(command_line)
    except ValueError:
        return False
    if not words or words[0].rsplit("/", 1)[-1] != "setarch":
        return False
    options = words[1:4]
    return "-R" in options or "--addr-no-randomize" in options


def _expect(jit: str, description: str) -> str | None:
    for engine, mark in ENGINE_MARK.items():
        present = mark in description
        if jit == engine and not present:
            return f"without {mark}"
        if jit != engine and present:
            return f"with {mark}"
    return None


def verify(data: Any, requested: Sequence[str] | Mapping[str, str], ruby: str) -> Verification:
    """`data` is output.json already checked by output.read_result_json; `requested` the
    labels, or label → engine (interp, yjit, zjit) where labels are not engine names."""
    jits = dict(requested) if isinstance(requested, Mapping) else {e: e for e in requested}
    result = Verification()
    metadata, raw = data.get("metadata", {}), data.get("raw_data", {})
    command_lines: list[str] = []
    for exe, jit in jits.items():
        benches = raw.get(exe) or {}
        result.ruby_v[exe] = str(metadata.get(exe, ""))
        seen = [str(r.get("RUBY_DESCRIPTION", "")) for r in benches.values()]
        command_lines += [str(r.get("command_line", "")) for r in benches.values()]
        if not seen:
            result.unverified.append(exe)
            continue
        result.descriptions[exe] = sorted(set(seen))
        for description in result.descriptions[exe]:
            problem = _expect(jit, description)
            if problem:
                flag = "" if jit == "interp" else f" --{jit}"
                result.mismatches.append(
                    f"executable {exe!r} ({ruby}{flag}) ran "
                    f"{problem}: RUBY_DESCRIPTION {description!r}"
                )
    if command_lines:
        off = all(aslr_disabled_in(c) for c in command_lines)
        result.aslr = AslrState.disabled if off else AslrState.enabled
    return result


def verify_file(
    path: Path, requested: Sequence[str] | Mapping[str, str], ruby: str
) -> Verification:
    return verify(json.loads(path.read_text(encoding="utf-8")), requested, ruby)

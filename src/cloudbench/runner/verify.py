"""Check a task's output.json against what it claims: ASLR off, YJIT only where labelled.

Both facts come from ruby-bench's own records: `command_line` (it prefixes
`setarch <arch> -R` only when that works, silently dropping it otherwise) and the
`RUBY_DESCRIPTION` each benchmark process reported.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudbench.protocol import AslrState


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


def _expect(exe: str, description: str) -> str | None:
    has_yjit = "+YJIT" in description
    if exe == "yjit" and not has_yjit:
        return "without +YJIT"
    if exe == "interp" and has_yjit:
        return "with +YJIT"
    return None


def verify(data: Any, requested: Sequence[str], ruby: str) -> Verification:
    """`data` is output.json already checked by output.read_result_json."""
    result = Verification()
    metadata, raw = data.get("metadata", {}), data.get("raw_data", {})
    command_lines: list[str] = []
    for exe in dict.fromkeys(requested):
        benches = raw.get(exe) or {}
        result.ruby_v[exe] = str(metadata.get(exe, ""))
        seen = [str(r.get("RUBY_DESCRIPTION", "")) for r in benches.values()]
        command_lines += [str(r.get("command_line", "")) for r in benches.values()]
        if not seen:
            result.unverified.append(exe)
            continue
        result.descriptions[exe] = sorted(set(seen))
        for description in result.descriptions[exe]:
            problem = _expect(exe, description)
            if problem:
                result.mismatches.append(
                    f"executable {exe!r} ({ruby}{' --yjit' if exe == 'yjit' else ''}) ran "
                    f"{problem}: RUBY_DESCRIPTION {description!r}"
                )
    if command_lines:
        off = all(aslr_disabled_in(c) for c in command_lines)
        result.aslr = AslrState.disabled if off else AslrState.enabled
    return result


def verify_file(path: Path, requested: Sequence[str], ruby: str) -> Verification:
    return verify(json.loads(path.read_text(encoding="utf-8")), requested, ruby)

#!/usr/bin/env python3
"""Regenerate src/cloudbench/runner/executors/seccomp-aslr.json.

Input: the engine default profile as containers-common ships it
(/usr/share/containers/seccomp.json, Debian package golang-github-containers-common; the
same rules as Docker's built-in default). Output: that profile plus `personality` with
ADDR_NO_RANDOMIZE (0x0040000), alone and combined with each value the default already
allows, so `setarch -R` (ruby-bench's ASLR switch) works and nothing else is opened.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ADDR_NO_RANDOMIZE = 0x0040000
OUT = Path(__file__).resolve().parent.parent / "src/cloudbench/runner/executors/seccomp-aslr.json"


def main(source: str = "/usr/share/containers/seccomp.json") -> None:
    profile = json.loads(Path(source).read_text())
    allowed = sorted({
        arg["value"]
        for rule in profile["syscalls"] if rule["names"] == ["personality"]
        for arg in rule.get("args") or [] if arg["op"] == "SCMP_CMP_EQ"
    })  # fmt: skip
    extra = sorted({v | ADDR_NO_RANDOMIZE for v in allowed if v != 0xFFFFFFFF} - set(allowed))
    for value in extra:
        profile["syscalls"].append({
            "names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
            "comment": "cloudbench: setarch -R (ASLR off for benchmarks)",
        })  # fmt: skip
    OUT.write_text(json.dumps(profile, indent=1) + "\n")
    print(f"wrote {OUT}: added personality values {[hex(v) for v in extra]}")


if __name__ == "__main__":
    main(*sys.argv[1:])

"""What CPU this is, from /proc/cpuinfo: x86 (`model name`) and aarch64 (implementer + part)."""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
NOT_EXPOSED = "not exposed"

# MIDR implementer -> (vendor, {part: name}); names as util-linux's lscpu prints them.
_ARM_PARTS: dict[int, tuple[str, dict[int, str]]] = {
    0x41: (
        "ARM",
        {
            0xD03: "Cortex-A53",
            0xD07: "Cortex-A57",
            0xD08: "Cortex-A72",
            0xD0B: "Cortex-A76",
            0xD0C: "Neoverse-N1",
            0xD0D: "Cortex-A77",
            0xD40: "Neoverse-V1",
            0xD49: "Neoverse-N2",
            0xD4A: "Neoverse-E1",
            0xD4F: "Neoverse-V2",
            0xD84: "Neoverse-V3",
            0xD8E: "Neoverse-N3",
        },
    ),
    0x61: ("Apple", {}),
    0xC0: ("Ampere", {0xAC3: "Ampere-1", 0xAC4: "Ampere-1a"}),
    0x6D: ("Microsoft", {0xD49: "Azure Cobalt 100"}),
}


def _first_block(text: str) -> dict[str, str]:
    """Fields of the first processor block (all CPUs of a cloud VM are the same model)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        return None


def _arm(fields: dict[str, str]) -> dict[str, object]:
    implementer, part = _int(fields.get("CPU implementer")), _int(fields.get("CPU part"))
    vendor, parts = _ARM_PARTS.get(implementer or -1, (None, {}))
    name = parts.get(part or -1)
    if name is None and implementer is not None:
        name = f"implementer {implementer:#x} part {part:#x}" if part is not None else None
    variant, revision = _int(fields.get("CPU variant")), _int(fields.get("CPU revision"))
    return {
        "vendor": vendor or (f"{implementer:#x}" if implementer is not None else NOT_EXPOSED),
        "model_name": name or NOT_EXPOSED,
        "implementer": fields.get("CPU implementer"),
        "part": fields.get("CPU part"),
        # ARM's own notation: r<variant>p<revision>.
        "stepping": f"r{variant}p{revision}"
        if variant is not None and revision is not None
        else None,
        "family": fields.get("CPU architecture"),
        "model": fields.get("CPU part"),
        "microcode": NOT_EXPOSED,
    }


def parse_cpuinfo(text: str) -> dict[str, object]:
    fields = _first_block(text)
    if "CPU implementer" in fields:
        return _arm(fields)
    name = fields.get("model name") or fields.get("cpu model") or fields.get("Model")
    return {
        "vendor": fields.get("vendor_id") or NOT_EXPOSED,
        "model_name": name or NOT_EXPOSED,
        "family": fields.get("cpu family"),
        "model": fields.get("model"),
        "stepping": fields.get("stepping"),
        "microcode": fields.get("microcode") or NOT_EXPOSED,
    }


def cpu_facts(path: Path = CPUINFO) -> dict[str, object]:
    try:
        facts = parse_cpuinfo(path.read_text(errors="replace"))
    except OSError:
        facts = {"vendor": NOT_EXPOSED, "model_name": NOT_EXPOSED}
    facts["arch"] = platform.machine()
    return facts

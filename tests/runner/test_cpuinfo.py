"""CPU identity from /proc/cpuinfo files (one captured here, one arm64 by its kernel shape)."""

from __future__ import annotations

from pathlib import Path

from cloudbench.runner.cpuinfo import NOT_EXPOSED, cpu_facts, parse_cpuinfo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cpuinfo"


def test_aarch64_neoverse_v2_named_from_implementer_and_part() -> None:
    facts = parse_cpuinfo((FIXTURES / "aarch64-neoverse-v2-2vcpu.txt").read_text())
    assert facts["vendor"] == "ARM"
    assert facts["model_name"] == "Neoverse-V2"
    assert (facts["implementer"], facts["part"], facts["stepping"]) == ("0x41", "0xd4f", "r0p1")
    assert facts["microcode"] == NOT_EXPOSED  # arm64 has no microcode line


def test_unknown_arm_part_is_named_by_its_numbers() -> None:
    text = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xfff\nCPU variant\t: 0x1\n"
    assert parse_cpuinfo(text)["model_name"] == "implementer 0x41 part 0xfff"


def test_x86_captured_file() -> None:
    facts = parse_cpuinfo((FIXTURES / "x86_64-xeon-2vcpu.txt").read_text())
    assert facts["vendor"] == "GenuineIntel"
    assert facts["model_name"] == "Intel(R) Xeon(R) Processor"
    assert (facts["family"], facts["model"], facts["stepping"]) == ("6", "207", "2")
    assert str(facts["microcode"]).startswith("0x")


def test_missing_file(tmp_path: Path) -> None:
    assert cpu_facts(tmp_path / "none")["model_name"] == NOT_EXPOSED

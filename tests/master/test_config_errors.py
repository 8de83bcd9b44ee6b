"""Invalid configs: one clear line naming file and field, exit 1, nothing started."""

from __future__ import annotations

import pytest

from tests.master.conftest import Harness

GOOD = '"per_instance_type": {"tasks": 1}, "local": ["x"]'
CASES = {
    "bad_json": ('{"ruby_version": "system",, }', "invalid JSON at line 1, column 27"),
    "no_ruby_version": ("{" + GOOD + "}", "ruby_version: missing"),
    "zero_tasks": (
        '{"ruby_version": "3.4", "per_instance_type": {"tasks": 0}, "local": ["x"]}',
        "per_instance_type.tasks: ",
    ),
    "both_ruby_keys": (
        '{"ruby_version": "3.4", "ruby_versions": ["3.4", "4.0"], ' + GOOD + "}",
        "ruby_version: ruby_version and ruby_versions are both given; give exactly one",
    ),
    "unknown_engine": (
        '{"ruby_version": "3.4", "benchmarks": {"executables": ["mjit"]}, ' + GOOD + "}",
        "benchmarks.executables: item 0 ('mjit') is not an engine; use \"interp\"",
    ),
    "option_for_other_jit": (
        '{"ruby_version": "4.0", "benchmarks": {"executables": [{"name": "z", "jit": "zjit", '
        '"options": ["--yjit-mem-size=64"]}]}, ' + GOOD + "}",
        "option '--yjit-mem-size=64' is not allowed for jit zjit; only --zjit-NAME",
    ),
    "executable_name_twice": (
        '{"ruby_version": "3.4", "benchmarks": {"executables": ["yjit", {"name": "yjit", '
        '"jit": "yjit", "options": ["--yjit-mem-size=64"]}]}, ' + GOOD + "}",
        "benchmarks.executables: the name 'yjit' is used twice",
    ),
    "type_tasks_zero": (
        '{"ruby_version": "3.4", "per_instance_type": {"tasks": 1}, '
        '"local": [{"instance_type": "x", "tasks": 0}]}',
        "local[0].tasks: Input should be greater than or equal to 1",
    ),
    "unknown_provider": (
        '{"ruby_version": "3.4", "per_instance_type": {"tasks": 1}, "gcp": ["n2"]}',
        "gcp: unknown provider; expected one of aws, azure, local",
    ),
    "extra_args_program": (
        '{"ruby_version": "3.4", "per_instance_type": {"tasks": 1}, "local": ["x"], '
        '"benchmarks": {"extra_args": ["--with_pre-init=/tmp/pwn.rb"]}}',
        "benchmarks.extra_args: '--with_pre-init=/tmp/pwn.rb' is not an allowed",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_config_is_one_line_and_starts_nothing(harness: Harness, case: str) -> None:
    text, expected = CASES[case]
    path = harness.config(text, name=f"{case}.json")
    result = harness.cli("run", str(path), "--state-dir", str(harness.state))
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{path}: ") and expected in lines[0], lines[0]
    assert not harness.state.exists()
    assert not (harness.home / "sessions").exists() or not harness.sessions()


def test_provider_filter_without_matching_types(harness: Harness) -> None:
    path = harness.config(
        '{"ruby_version": "3.4", "per_instance_type": {"tasks": 1}, "aws": ["c7g.medium"]}'
    )
    result = harness.cli("run", str(path), "--provider", "local")
    assert result.returncode == 1
    assert "no instance types" in result.stderr and result.stderr.count("\n") == 1


def test_aws_without_settings_is_refused_before_starting(harness: Harness) -> None:
    path = harness.config(
        '{"ruby_version": "3.4", "per_instance_type": {"tasks": 1}, "aws": ["c7g.medium"]}'
    )
    result = harness.cli("run", str(path), "--state-dir", str(harness.state))
    assert result.returncode == 1 and "AWS settings missing" in result.stderr
    assert not harness.state.exists()


@pytest.mark.parametrize("name", ["local.json", "aws.example.json"])
def test_shipped_configs_validate(name: str) -> None:
    from pathlib import Path

    from cloudbench.master.config import load_config

    spec = load_config(Path(__file__).resolve().parents[2] / "config" / name)
    assert spec.instance_types()

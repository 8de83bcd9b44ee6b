"""Shared fixtures for the runner tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudbench.runner.ruby_bench import RubyBenchSource, prepare_source

ROOT = Path(__file__).resolve().parents[2]
FAKE_SUITE = ROOT / "tests" / "fake_ruby_bench"
# Real ruby-bench output files (data only; provenance in their README).
FIXTURES = ROOT / "tests" / "fixtures" / "ruby-bench"


@pytest.fixture(scope="session")
def fake_source(tmp_path_factory: pytest.TempPathFactory) -> RubyBenchSource:
    return prepare_source(str(FAKE_SUITE), "unused", tmp_path_factory.mktemp("cache"))


@pytest.fixture
def fixtures_dir() -> Path:
    assert FIXTURES.is_dir(), f"ruby-bench fixtures missing at {FIXTURES}"
    return FIXTURES

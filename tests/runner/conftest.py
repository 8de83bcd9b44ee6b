"""Shared fixtures for the runner tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudbench.runner.ruby_bench import RubyBenchSource, prepare_source

ROOT = Path(__file__).resolve().parents[2]
FAKE_SUITE = ROOT / "tests" / "fake_ruby_bench"
FIXTURES = ROOT.parent / "shared" / "fixtures" / "ruby-bench"


@pytest.fixture(scope="session")
def fake_source(tmp_path_factory: pytest.TempPathFactory) -> RubyBenchSource:
    return prepare_source(str(FAKE_SUITE), "unused", tmp_path_factory.mktemp("cache"))


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"ruby-bench fixtures not found at {FIXTURES}")
    return FIXTURES

"""`--executor auto`: the official image for real versions, the host for "system"."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudbench.runner.executors import ENGINE_WAIT, AutoExecutor, engine_answers
from cloudbench.runner.ruby_bench import RubyBenchSource


def test_without_engine_everything_runs_on_the_host(
    fake_source: RubyBenchSource, tmp_path: Path
) -> None:
    auto = AutoExecutor(fake_source, tmp_path, engine=False)
    provisioned = auto.provision("system")
    assert provisioned.image_id is None
    assert provisioned.ruby_description.startswith("ruby ")
    auto.close()


@pytest.mark.container
def test_with_engine_system_goes_to_host_and_versions_to_containers(
    fake_source: RubyBenchSource, tmp_path: Path, container_engine: str
) -> None:
    # As `--executor auto` asks (choose's default): a socket busy under load is waited for.
    assert engine_answers(ENGINE_WAIT)
    auto = AutoExecutor(fake_source, tmp_path, engine=True)
    try:
        host = auto.provision("system")
        image = auto.provision("3.1")
        assert host.image_id is None
        assert image.image_id is not None and "3.1" in image.ruby_description
    finally:
        auto.close()

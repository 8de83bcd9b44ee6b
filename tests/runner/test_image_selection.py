"""The benchmark image holds the gems of the run's selected benchmarks only (issue 27).

The selection rules are checked on a suite laid out as ruby-bench's; the image with a real
engine (podman) on the stand-in `ruby:3.1`. That image has no Bundler and the tests may not
reach rubygems.org, so a stand-in `bundle` (a shell script on top of it, said here) writes
each Gemfile.lock it is run for: the image then shows which bundles were installed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudbench.protocol import BenchmarkSettings
from cloudbench.runner.executors.docker import DockerExecutor
from cloudbench.runner.ruby_bench import prepare_source
from cloudbench.runner.selection import gemfile_dirs, selected
from tests.runner.conftest import FAKE_SUITE

BASE = "docker.io/library/ruby:image-branch-bundler"  # built here, removed after
STANDIN_BUNDLE = '#!/bin/sh\necho "installed by the stand-in bundle $*" > Gemfile.lock\n'


def _suite(root: Path) -> Path:
    """The fake suite plus two gem benchmarks: `railsish` (headline), `gemmy` (other)."""
    suite = root / "suite"
    shutil.copytree(FAKE_SUITE, suite)
    for name in ("railsish", "gemmy"):
        folder = suite / "benchmarks" / name
        folder.mkdir()
        (folder / "benchmark.rb").write_text("puts 1\n")
        (folder / "Gemfile").write_text('source "https://rubygems.org"\ngem "rack"\n')
    meta = suite / "benchmarks.yml"
    meta.write_text(meta.read_text() + "railsish:\n  desc: gems\n  category: headline\n")
    return suite


def test_selection_follows_ruby_bench_filters(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    headline = BenchmarkSettings(categories=["headline"])
    assert selected(suite, headline) == ["fib", "loops", "nbody", "railsish"]
    assert gemfile_dirs(suite, headline) == ["benchmarks/railsish"]
    assert gemfile_dirs(suite, BenchmarkSettings(names=["fib", "gemmy"])) == ["benchmarks/gemmy"]
    # Names and categories both hold: gemmy is in category "other" (benchmarks.yml has none).
    both = BenchmarkSettings(names=["gemmy"], categories=["headline"])
    assert gemfile_dirs(suite, both) == []
    assert gemfile_dirs(suite, None) == ["benchmarks/gemmy", "benchmarks/railsish"]


@pytest.fixture(scope="module")
def bundler_base(container_engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    context = tmp_path_factory.mktemp("bundler-base")
    (context / "bundle").write_text(STANDIN_BUNDLE)
    (context / "Dockerfile").write_text(
        "FROM docker.io/library/ruby:3.1\nCOPY bundle /usr/local/bin/bundle\n"
        "RUN chmod 755 /usr/local/bin/bundle\n"
    )
    subprocess.run(["podman", "build", "-q", "-t", BASE, str(context)], check=True, timeout=600)
    yield BASE.rsplit(":", 1)[1]
    subprocess.run(["podman", "rmi", "-f", BASE], capture_output=True, check=False)


def _bundled(ex: DockerExecutor, tag: str) -> list[str]:
    script = "ls benchmarks/*/Gemfile.lock 2>/dev/null; true"
    out = ex.client.containers.run(tag, ["sh", "-c", script], remove=True, network_mode="none")
    return sorted(bytes(out).decode().split())


def test_image_installs_only_the_selected_gems(bundler_base: str, tmp_path: Path) -> None:
    source = prepare_source(str(_suite(tmp_path)), "unused", tmp_path / "cache")
    ex = DockerExecutor(source, tmp_path / "build")
    made: list[str] = []
    try:
        headline = ex.provision(bundler_base, BenchmarkSettings(categories=["headline"]))
        assert headline.image_tag
        made.append(headline.image_tag)
        assert _bundled(ex, headline.image_tag) == ["benchmarks/railsish/Gemfile.lock"]
        # The same selection again: the same image, not another build.
        again = ex.provision(bundler_base, BenchmarkSettings(categories=["headline"], names=[]))
        assert again.image_id == headline.image_id
        # Every benchmark (no selection known): another image, with both bundles.
        every = ex.provision(bundler_base)
        assert every.image_tag
        made.append(every.image_tag)
        assert every.image_tag != headline.image_tag and every.image_id != headline.image_id
        assert _bundled(ex, every.image_tag) == [
            "benchmarks/gemmy/Gemfile.lock",
            "benchmarks/railsish/Gemfile.lock",
        ]
        labels = ex.client.images.get(headline.image_tag).labels
        assert labels["cloudbench.gemfiles"] == "benchmarks/railsish"
    finally:
        for tag in made:
            subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, check=False)
        ex.close()

"""The benchmark image holds the gems of the run's selected benchmarks only (issue 27).

The selection rules are checked on a suite laid out as ruby-bench's; the image with a real
engine (podman) on the stand-in `ruby:3.1`. That image has no Bundler and the tests may not
reach rubygems.org, so a stand-in `bundle` (a shell script on top of it, said here) writes
each Gemfile.lock it is run for: the image then shows which bundles were installed.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudbench.protocol import BenchmarkSettings
from cloudbench.runner.executors.base import ImageSharing, ProvisionError
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


def test_one_archive_gives_every_machine_the_same_image(
    bundler_base: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Machine A builds and saves; machine B (its own executor, the image gone from the
    engine) loads A's archive instead of building: the same image id. A changed byte or
    an archive of another selection is never used."""
    source = prepare_source(str(_suite(tmp_path)), "unused", tmp_path / "cache")
    shared = tmp_path / "shared"
    headline = BenchmarkSettings(categories=["headline"])
    made: list[str] = []
    a = DockerExecutor(source, tmp_path / "a", images=ImageSharing(save_dir=shared))
    try:
        built = a.provision(bundler_base, headline)
        assert built.image_tag
        made.append(built.image_tag)
        (archive,) = shared.glob("benchmark-*.tar")
        assert archive.name == f"benchmark-{hashlib.sha256(archive.read_bytes()).hexdigest()}.tar"
        subprocess.run(["podman", "rmi", "-f", built.image_tag], capture_output=True, check=True)

        tampered = tmp_path / "tampered" / archive.name
        tampered.parent.mkdir()
        tampered.write_bytes(archive.read_bytes()[:-1] + b"x")  # tar ends in zeros
        bad = DockerExecutor(source, tmp_path / "bad", images=ImageSharing(archive=tampered))
        with pytest.raises(ProvisionError, match="its bytes have sha256"):
            bad.provision(bundler_base, headline)
        bad.close()

        b = DockerExecutor(source, tmp_path / "b", images=ImageSharing(archive=archive))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="cloudbench.runner.executors"):
            loaded = b.provision(bundler_base, headline)
        assert (loaded.image_tag, loaded.image_id) == (built.image_tag, built.image_id)
        # Loaded, not built again (a rebuild from the engine's layer cache could reach
        # the same id, so the log says which it was).
        said = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("loaded benchmark image") for m in said), said
        assert not any(m.startswith("building benchmark image") for m in said), said
        assert _bundled(b, built.image_tag) == ["benchmarks/railsish/Gemfile.lock"]
        # Another selection is not in the archive: B builds that one itself.
        other = b.provision(bundler_base, BenchmarkSettings(names=["gemmy"]))
        assert other.image_tag and other.image_tag != built.image_tag
        made.append(other.image_tag)
        assert _bundled(b, other.image_tag) == ["benchmarks/gemmy/Gemfile.lock"]
        b.close()
    finally:
        for tag in made:
            subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, check=False)
        a.close()

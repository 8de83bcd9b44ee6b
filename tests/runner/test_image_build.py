"""A benchmark image build that lost podman 4.3's layer-cache race runs once more.

The race (containers/buildah#5674: a build's cache lookup meets an image another process
is removing) cannot be produced on demand, so the engine here is a stand-in that fails
the way podman's Docker API does: a BuildError carrying podman's message.
"""

from __future__ import annotations

from typing import Any

import pytest
from docker.errors import BuildError

from cloudbench.runner.executors import image_build

RACE = (
    "checking if cached image exists from a previous build: getting top layer info: layer not known"
)


class _Images:
    def __init__(self, *failures: str) -> None:
        self.failures = list(failures)
        self.calls: list[dict[str, Any]] = []

    def build(self, **kwargs: Any) -> tuple[str, list[object]]:
        self.calls.append(kwargs)
        if self.failures:
            raise BuildError(self.failures.pop(0), [])
        return f"image:{kwargs['tag']}", []


class _Client:
    def __init__(self, *failures: str) -> None:
        self.images = _Images(*failures)


def test_a_lost_cache_race_is_built_once_more_with_the_same_arguments() -> None:
    client = _Client(RACE)
    image, _log = image_build.build(client, path="/ctx", tag="cloudbench-ruby-bench:3.4-x")
    assert image == "image:cloudbench-ruby-bench:3.4-x"
    assert client.images.calls == [{"path": "/ctx", "tag": "cloudbench-ruby-bench:3.4-x"}] * 2


def test_other_build_failures_and_a_second_lost_race_are_raised() -> None:
    broken = _Client("The command '/bin/sh -c bundle install' returned a non-zero code: 5")
    with pytest.raises(BuildError, match="bundle install"):
        image_build.build(broken, path="/ctx", tag="t")
    assert len(broken.images.calls) == 1
    twice = _Client(RACE, RACE)
    with pytest.raises(BuildError, match="layer not known"):
        image_build.build(twice, path="/ctx", tag="t")
    assert len(twice.images.calls) == 2

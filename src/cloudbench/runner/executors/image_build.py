"""A benchmark image built through the engine's API, once more when podman lost its
layer-cache race.

podman 4.3 (Debian 12's) fails a build whose layer-cache lookup meets an image that
another process removes at that moment: "checking if cached image exists from a previous
build: getting top layer info: layer not known" (containers/buildah#5674, fixed upstream
in 2026 by skipping the vanished layer). A build is all or nothing, so a second one is
safe; any other failure is the build's own and is not retried.
"""

from __future__ import annotations

import logging
from typing import Any

from docker.errors import APIError, BuildError

logger = logging.getLogger(__name__)

CACHE_RACE = "checking if cached image exists from a previous build"


def build(client: Any, **kwargs: Any) -> tuple[Any, Any]:
    """`client.images.build(**kwargs)`: (image, build log)."""
    try:
        return client.images.build(**kwargs)  # type: ignore[no-any-return]
    except (BuildError, APIError) as exc:
        if CACHE_RACE not in str(exc):
            raise
        logger.warning(
            "building %s: the engine lost a layer-cache race with an image removal "
            "(podman 4.3, buildah#5674); building once more",
            kwargs.get("tag"),
        )
    return client.images.build(**kwargs)  # type: ignore[no-any-return]

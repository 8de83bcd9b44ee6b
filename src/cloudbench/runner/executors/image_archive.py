"""One benchmark image shared by many machines as a digest-named archive.

`save` writes a built image as a docker-archive tar named by its own sha256
(``benchmark-<sha256>.tar``); `load` checks a file's bytes against the sha256 its name
carries before the engine sees it, loads it, and returns the image only when it is the
one the executor would build (the same tag: Ruby, base image digest, ruby-bench
content, selection of Gemfiles). Every machine that loads one archive runs the same
bytes: the same image id, which each task's metadata.json records (`image_id`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound

from cloudbench.runner.executors.base import ProvisionError

log = logging.getLogger(__name__)

NAME = re.compile(r"^benchmark-([0-9a-f]{64})\.tar$")
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save(client: docker.DockerClient, tag: str, folder: Path) -> Path:
    """`folder/benchmark-<sha256>.tar` holding the image `tag` (with its tag)."""
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{tag.replace(':', '_').replace('/', '_')}.part"
    digest = hashlib.sha256()
    try:
        image = client.images.get(tag)
        with part.open("wb") as out:
            for chunk in image.save(named=True):
                out.write(chunk)
                digest.update(chunk)
    except DockerException as exc:
        part.unlink(missing_ok=True)
        raise ProvisionError(f"cannot save benchmark image {tag}: {exc}") from exc
    dest = folder / f"benchmark-{digest.hexdigest()}.tar"
    part.replace(dest)
    log.info("saved benchmark image %s as %s", tag, dest)
    return dest


def load(client: docker.DockerClient, archive: Path, tag: str) -> Any | None:
    """The image `tag` from `archive` (its bytes checked first); None when the archive
    holds another image (another selection or Ruby: the caller builds its own)."""
    match = NAME.match(archive.name)
    if match is None:
        raise ProvisionError(
            f"benchmark image archive {archive}: not named benchmark-<sha256>.tar (the "
            "name carries the digest it is checked against)"
        )
    try:
        actual = sha256_file(archive)
    except OSError as exc:
        raise ProvisionError(f"benchmark image archive {archive}: {exc.strerror}") from None
    if actual != match.group(1):
        raise ProvisionError(
            f"benchmark image archive {archive}: its bytes have sha256 {actual}, not the "
            "one its name says; copy it again"
        )
    try:
        with archive.open("rb") as data:
            loaded = client.images.load(data)
        ids = {image.id for image in loaded}
        image = client.images.get(tag)
    except ImageNotFound:
        log.info("benchmark image archive %s does not hold %s: building it", archive.name, tag)
        return None
    except DockerException as exc:
        raise ProvisionError(f"cannot load benchmark image archive {archive}: {exc}") from exc
    if image.id not in ids:
        log.info("benchmark image archive %s holds another %s: building it", archive.name, tag)
        return None
    log.info("loaded benchmark image %s (%s) from %s", tag, image.id, archive.name)
    return image

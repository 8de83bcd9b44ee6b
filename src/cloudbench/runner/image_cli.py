"""`cloudbench benchmark-image`: build the benchmark image a run's runners would build and
save it as a digest-named archive, for machines that load it instead of building.

The image is the docker executor's own (executors/docker.py: the same tag from the same
Ruby, base digest, ruby-bench content and selection), so a runner given the archive
(`--image-archive`) finds exactly the image it needs. The last stdout line is JSON:
archive file name, its sha256, image id and tag, the base image digest and the seconds
the build took.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from cloudbench.protocol import BenchmarkSettings


def benchmark_image(
    ruby_version: Annotated[str, typer.Option(help="The Ruby (ruby:<version> image).")],
    ruby_bench: Annotated[Path, typer.Option(help="A ruby-bench directory.")],
    out: Annotated[Path, typer.Option(help="Folder for benchmark-<sha256>.tar.")],
    benchmarks: Annotated[
        str, typer.Option(help="The run's `benchmarks` settings as JSON (its selection).")
    ] = "{}",
    ruby_image_digest: Annotated[
        str | None, typer.Option(help="sha256:... of ruby:<version> (default: resolved).")
    ] = None,
) -> None:
    """Build a run's benchmark image once and save it as OUT/benchmark-<sha256>.tar."""
    from docker.errors import DockerException

    from cloudbench.runner.executors import ProvisionError, StartupError, image_archive
    from cloudbench.runner.executors.docker import DockerExecutor
    from cloudbench.runner.ruby_bench import prepare_source

    try:
        selection = BenchmarkSettings.model_validate_json(benchmarks)
    except ValidationError as exc:
        typer.echo(f"error: --benchmarks: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None
    started = time.monotonic()
    try:
        source = prepare_source(str(ruby_bench), "unused", out / ".cache")
        executor = DockerExecutor(source, out / ".build", base_digest=ruby_image_digest)
        try:
            made = executor.provision(ruby_version, selection)
            assert made.image_tag is not None
            archive = image_archive.save(executor.client, made.image_tag, out)
        finally:
            executor.close()
    except (ProvisionError, StartupError, DockerException) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        json.dumps(
            {
                "archive": archive.name,
                "sha256": archive.name[len("benchmark-") : -len(".tar")],
                "image_id": made.image_id,
                "image_tag": made.image_tag,
                "base_image_digest": made.base_image_digest,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )

"""Docker executor: one container per task from a benchmark image built once per machine."""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, BuildError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container

from cloudbench.runner.executors.base import (
    ExecutionResult,
    ExecutionSpec,
    Provisioned,
    ProvisionError,
    pump_output,
)
from cloudbench.runner.output import OUT_NAME, build_command
from cloudbench.runner.ruby_bench import RubyBenchSource

log = logging.getLogger(__name__)

DOCKERFILE = Path(__file__).with_name("Dockerfile")
IMAGE_REPO = "cloudbench-ruby-bench"
OUT_MOUNT = "/cloudbench/out"
POLL = 0.25


class DockerExecutor:
    name = "docker"

    def __init__(
        self, source: RubyBenchSource, build_dir: Path, client: docker.DockerClient | None = None
    ) -> None:
        self.source = source
        self.build_dir = build_dir
        self.client = client or docker.from_env()
        self._lock = threading.Lock()
        self._provisioned: dict[str, Provisioned] = {}

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------ provision
    def provision(self, ruby_version: str) -> Provisioned:
        if ruby_version == "system":
            raise ProvisionError('ruby_version "system" needs the host executor (--executor host)')
        with self._lock:  # slots share one image: build it once
            if ruby_version not in self._provisioned:
                self._provisioned[ruby_version] = self._provision(ruby_version)
            return self._provisioned[ruby_version]

    def image_tag(self, ruby_version: str) -> str:
        return f"{IMAGE_REPO}:{ruby_version}-{self.source.short_id}"

    def _provision(self, ruby_version: str) -> Provisioned:
        tag = self.image_tag(ruby_version)
        try:
            image = self.client.images.get(tag)
            log.info("using cached benchmark image %s", tag)
        except ImageNotFound:
            image = self._build(ruby_version, tag)
        except DockerException as exc:
            raise ProvisionError(f"container engine error: {exc}") from exc
        description = self._ruby_description(tag)
        return Provisioned(ruby_version, description, "ruby", str(image.id), tag)

    def _build(self, ruby_version: str, tag: str) -> Any:
        context = self.build_dir / tag.replace(":", "_")
        shutil.rmtree(context, ignore_errors=True)
        context.mkdir(parents=True)
        shutil.copy(DOCKERFILE, context / "Dockerfile")
        shutil.copytree(
            self.source.path, context / "ruby-bench", ignore=shutil.ignore_patterns(".git")
        )
        log.info("building benchmark image %s (FROM ruby:%s)", tag, ruby_version)
        try:
            image, build_log = self.client.images.build(
                path=str(context),
                tag=tag,
                buildargs={"RUBY_VERSION": ruby_version},
                labels={"cloudbench": "1", "cloudbench.ruby_bench": self.source.content_id},
                rm=True,
            )
        except (BuildError, APIError) as exc:
            raise ProvisionError(f"building {tag} failed: {exc}") from exc
        finally:
            shutil.rmtree(context, ignore_errors=True)
        for entry in build_log:
            if isinstance(entry, dict) and "stream" in entry:
                log.debug("build: %s", str(entry["stream"]).rstrip())
        return image

    def _ruby_description(self, tag: str) -> str:
        try:
            output = self.client.containers.run(
                tag,
                ["ruby", "-e", "print RUBY_DESCRIPTION"],
                remove=True,
                network_mode="none",
                labels={"cloudbench": "1"},
            )
        except DockerException as exc:
            raise ProvisionError(f"ruby does not start in {tag}: {exc}") from exc
        return bytes(output).decode("utf-8", errors="replace").strip()

    # ------------------------------------------------------------ execute
    def execute(self, spec: ExecutionSpec) -> ExecutionResult:
        args, env = build_command(spec.benchmarks, f"{OUT_MOUNT}/{OUT_NAME}", "ruby")
        command = ["ruby", "run_benchmarks.rb", *args]
        container = self._create(spec, command, env)
        result = ExecutionResult(exit_code=None, command=command, container_id=container.id)
        started = time.monotonic()
        pump = threading.Thread(
            target=self._pump, args=(container, spec), name=f"logs-{spec.task_id}", daemon=True
        )
        try:
            container.start()
            pump.start()
            self._wait(container, spec, result, started)
            pump.join(timeout=30)
        finally:
            result.duration = time.monotonic() - started
            failed = result.exit_code != 0
            if not (spec.keep_on_failure and failed):
                self._remove(container)
            else:
                log.warning("keeping container %s of failed task (debug)", container.short_id)
        return result

    def _create(self, spec: ExecutionSpec, command: list[str], env: dict[str, str]) -> Container:
        labels = {
            "cloudbench": "1",
            "cloudbench.run_id": str(spec.run_id),
            "cloudbench.task_id": str(spec.task_id),
            "cloudbench.runner_id": spec.runner_id,
        }
        name = f"cloudbench-{spec.run_id}-{spec.task_id}-{secrets.token_hex(3)}"
        image = spec.provisioned.image_tag or spec.provisioned.image_id
        try:
            return self.client.containers.create(
                image,
                command,
                name=name,
                working_dir="/ruby-bench",
                environment=env,
                labels=labels,
                cpuset_cpus=spec.cpuset,
                network_mode="none",  # nothing else talks while we measure
                volumes={str(spec.out_dir): {"bind": OUT_MOUNT, "mode": "rw"}},
            )
        except DockerException as exc:
            raise ProvisionError(f"cannot create container: {exc}") from exc

    def _pump(self, container: Container, spec: ExecutionSpec) -> None:
        try:
            stream = container.logs(stream=True, follow=True, stdout=True, stderr=True)
            pump_output(stream, spec.log_path, spec.on_line)
        except DockerException:
            log.exception("log stream of %s broke", container.short_id)

    def _wait(
        self, container: Container, spec: ExecutionSpec, result: ExecutionResult, started: float
    ) -> None:
        # Polling (not a blocking wait) so a 409 or SIGTERM stops the container at once.
        while True:
            container.reload()
            if container.status in ("exited", "dead", "stopped"):
                result.exit_code = int(container.attrs["State"]["ExitCode"])
                return
            if spec.cancel.is_set() or time.monotonic() - started > spec.timeout:
                result.cancelled = spec.cancel.is_set()
                result.timed_out = not result.cancelled
                self._kill(container)
                return
            time.sleep(POLL)

    def _kill(self, container: Container) -> None:
        try:
            container.kill()
            container.wait(timeout=30)
        except (NotFound, APIError):
            pass  # already gone

    def _remove(self, container: Container) -> None:
        try:
            container.remove(force=True)
        except NotFound:
            pass
        except DockerException:
            log.exception("could not remove container %s", container.short_id)

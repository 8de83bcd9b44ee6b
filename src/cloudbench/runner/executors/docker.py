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
from docker.errors import (
    APIError,
    BuildError,
    ContainerError,
    DockerException,
    ImageNotFound,
    NotFound,
)
from docker.models.containers import Container

from cloudbench.platform import containers
from cloudbench.protocol import BenchmarkSettings
from cloudbench.runner.executors import image_archive, image_build
from cloudbench.runner.executors.base import (
    ExecutionResult,
    ExecutionSpec,
    ImageSharing,
    Provisioned,
    ProvisionError,
    pump_output,
)
from cloudbench.runner.executors.engine_affinity import EngineAffinity
from cloudbench.runner.ordering import runner_arguments
from cloudbench.runner.output import OUT_NAME, build_command
from cloudbench.runner.ruby_bench import RubyBenchSource
from cloudbench.runner.selection import gemfile_dirs, selection_id

log = logging.getLogger(__name__)

DOCKERFILE = Path(__file__).with_name("Dockerfile")
# The engine default plus personality(ADDR_NO_RANDOMIZE): `setarch -R` works, and nothing
# else is opened (not seccomp=unconfined). Made by scripts/make-seccomp-profile.py.
SECCOMP_PROFILE = Path(__file__).with_name("seccomp-aslr.json")
IMAGE_REPO = "cloudbench-ruby-bench"
OUT_MOUNT = "/cloudbench/out"
# In the build context and the image: the Gemfiles whose gems the image installed.
GEMFILES = "gemfiles"
POLL = 0.25


class DockerExecutor:
    name = "docker"

    def __init__(
        self,
        source: RubyBenchSource,
        build_dir: Path,
        client: docker.DockerClient | None = None,
        base_digest: str | None = None,
        affinity: EngineAffinity | None = None,
        ruby_image: str = "ruby",
        images: ImageSharing | None = None,
    ) -> None:
        self.source = source
        self.ruby_image = ruby_image  # the official images' repository, or a mirror of it
        self.images = images or ImageSharing()
        # None: nothing pinned and nothing read back (metadata then claims nothing).
        self.affinity = affinity
        self.build_dir = build_dir
        self.client = client or docker.from_env()
        self.base_digest = base_digest
        self._lock = threading.Lock()
        self._provisioned: dict[tuple[str, str], Provisioned] = {}
        self._security_opt: list[str] | None = None

    def close(self) -> None:
        if self.affinity is not None:
            self.affinity.restore()
        self.client.close()

    # ------------------------------------------------------------ provision
    def provision(
        self, ruby_version: str, benchmarks: BenchmarkSettings | None = None
    ) -> Provisioned:
        """The image for this Ruby with the gems of the benchmarks `benchmarks` selects
        (of every benchmark when None), built once per machine."""
        if ruby_version == "system":
            raise ProvisionError('ruby_version "system" needs the host executor (--executor host)')
        gemfiles = gemfile_dirs(self.source.path, benchmarks)
        key = (ruby_version, selection_id(gemfiles))
        with self._lock:  # slots share one image: build it once
            if key not in self._provisioned:
                self._provisioned[key] = self._provision(ruby_version, gemfiles)
            return self._provisioned[key]

    def _base(self, ruby_version: str) -> tuple[str, str, str | None]:
        """(FROM reference, digest or image id for the tag, repo digest if known)."""
        name = f"{self.ruby_image}:{ruby_version}"
        if self.base_digest:
            pinned = [v for v, _ in self._provisioned if v != ruby_version]
            if pinned:  # one digest is one image: two "Rubies" would be the same Ruby
                raise ProvisionError(
                    f"ruby_version {ruby_version}: CLOUDBENCH_RUBY_IMAGE_DIGEST pins one "
                    f"image (already used for Ruby {pinned[0]}); several Rubies need one "
                    "image each: unset CLOUDBENCH_RUBY_IMAGE_DIGEST"
                )
            return f"{name}@{self.base_digest}", self.base_digest, self.base_digest
        try:
            try:
                image = self.client.images.get(name)
            except ImageNotFound:
                log.info("pulling %s", name)
                image = self.client.images.pull(self.ruby_image, tag=ruby_version)
        except DockerException as exc:
            raise ProvisionError(f"base image {name} unavailable: {exc}") from exc
        digests = [d.split("@", 1)[1] for d in image.attrs.get("RepoDigests") or [] if "@" in d]
        # The tag's name may move; build from exactly the image we just resolved.
        digest = digests[0] if digests else None
        return (f"{name}@{digest}" if digest else str(image.id)), digest or str(image.id), digest

    def image_tag(self, ruby_version: str, base_id: str, gemfiles: list[str]) -> str:
        """One image per Ruby, base image, ruby-bench commit and selection of Gemfiles."""
        short = base_id.split(":", 1)[-1][:12]
        return (
            f"{IMAGE_REPO}:{ruby_version}-{short}-{self.source.short_id}-{selection_id(gemfiles)}"
        )

    def _provision(self, ruby_version: str, gemfiles: list[str]) -> Provisioned:
        base_ref, base_id, digest = self._base(ruby_version)
        tag = self.image_tag(ruby_version, base_id, gemfiles)
        try:
            image = self.client.images.get(tag)
            log.info("using cached benchmark image %s", tag)
        except ImageNotFound:
            image = self._shared(tag) or self._build(base_ref, tag, gemfiles)
        except DockerException as exc:
            raise ProvisionError(f"container engine error: {exc}") from exc
        if self.images.save_dir is not None:  # the machine that builds for the others
            image_archive.save(self.client, tag, self.images.save_dir)
        description, ruby = self._ruby_description(tag)
        return Provisioned(
            ruby_version,
            description,
            ruby,
            str(image.id),
            tag,
            base_image=f"{self.ruby_image}:{ruby_version}",
            base_image_digest=digest,
            image_env=list(image.attrs.get("Config", {}).get("Env") or []),
        )

    def _shared(self, tag: str) -> Any | None:
        if self.images.archive is None:
            return None
        return image_archive.load(self.client, self.images.archive, tag)

    def _build(self, base_ref: str, tag: str, gemfiles: list[str]) -> Any:
        context = self.build_dir / tag.replace(":", "_")
        shutil.rmtree(context, ignore_errors=True)
        context.mkdir(parents=True)
        shutil.copy(DOCKERFILE, context / "Dockerfile")
        (context / GEMFILES).write_text("".join(f"{g}\n" for g in gemfiles))
        shutil.copytree(
            self.source.path, context / "ruby-bench", ignore=shutil.ignore_patterns(".git")
        )
        log.info(
            "building benchmark image %s (FROM %s) with the gems of %d benchmark(s)",
            tag,
            base_ref,
            len(gemfiles),
        )
        try:
            image, build_log = image_build.build(
                self.client,
                path=str(context),
                tag=tag,
                buildargs={"BASE_IMAGE": base_ref},
                labels={
                    "cloudbench": "1",
                    "cloudbench.ruby_bench": self.source.content_id,
                    "cloudbench.gemfiles": ",".join(gemfiles),
                },
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

    def _ruby_description(self, tag: str) -> tuple[str, str]:
        """RUBY_DESCRIPTION and the resolved Ruby binary inside the image."""
        try:
            output = self.client.containers.run(
                tag,
                # Docker 20.10 drops a last line without a newline from the logs: end with one.
                ["ruby", "-e", "print RUBY_DESCRIPTION, 0.chr, RbConfig.ruby, 10.chr"],
                remove=True,
                network_mode="none",
                labels={"cloudbench": "1"},
            )
        except DockerException as exc:
            raise ProvisionError(f"ruby does not start in {tag}: {exc}") from exc
        description, _, ruby = bytes(output).decode("utf-8", errors="replace").partition("\0")
        return description.strip(), ruby.strip() or "ruby"

    def probe(self, provisioned: Provisioned, args: list[str]) -> tuple[int, str]:
        image = provisioned.image_tag or provisioned.image_id or ""
        try:
            output = self.client.containers.run(
                image,
                ["ruby", *args],
                remove=True,
                network_mode="none",
                labels={"cloudbench": "1"},
                stderr=True,
            )
        except ContainerError as exc:
            stderr = exc.stderr.decode("utf-8", errors="replace") if exc.stderr else str(exc)
            return int(exc.exit_status), stderr
        except DockerException as exc:
            return 125, f"container engine error: {exc}"
        return 0, bytes(output).decode("utf-8", errors="replace")

    # ------------------------------------------------------------ execute
    def execute(self, spec: ExecutionSpec) -> ExecutionResult:
        out = f"{OUT_MOUNT}/{OUT_NAME}"
        args, harness_env = build_command(spec.benchmarks, out, "ruby", spec.executables)
        # taskset as well as the cpuset: rootless podman on cgroup v1 ignores --cpuset-cpus.
        ruby_args = runner_arguments(args, spec.benchmarks, spec.seed, spec.interleave, spec.pick)
        command = ["taskset", "-c", spec.cpuset, "ruby", *ruby_args]
        env = {**harness_env, **spec.env}  # the container gets nothing of the runner's own
        container = self._create(spec, command, env)
        result = ExecutionResult(exit_code=None, command=command, container_id=container.id)
        image_env = dict(e.partition("=")[::2] for e in spec.provisioned.image_env)
        result.environment = {**image_env, **env}
        started = time.monotonic()
        pump = threading.Thread(
            target=self._pump, args=(container, spec), name=f"logs-{spec.task_id}", daemon=True
        )
        try:
            container.start()
            pump.start()
            result.engine_affinity = self._check_affinity(container, spec)
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

    def _check_affinity(self, container: Container, spec: ExecutionSpec) -> dict[str, Any] | None:
        if self.affinity is None:
            return None
        try:
            container.reload()
            pid = int(container.attrs.get("State", {}).get("Pid") or 0)
            return self.affinity.check_task(pid or None, spec.cpus)
        except Exception:  # a failed check must not fail the benchmark; it claims nothing
            log.exception("could not read the engine's CPU affinity")
            return None

    def _create(self, spec: ExecutionSpec, command: list[str], env: dict[str, str]) -> Container:
        if self.affinity is not None:
            # Before the container exists: its helper and runc inherit the daemon's mask.
            self.affinity.pin_daemons()
        labels = {
            "cloudbench": "1",
            "cloudbench.run_id": str(spec.run_id),
            "cloudbench.task_id": str(spec.task_id),
            "cloudbench.runner_id": spec.runner_id,
            containers.ORCHESTRATOR_LABEL: spec.orchestrator_url,
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
                security_opt=self.security_opt(),
                network_mode="none",  # nothing else talks while we measure
                volumes={str(spec.out_dir): {"bind": OUT_MOUNT, "mode": "rw"}},
            )
        except DockerException as exc:
            raise ProvisionError(f"cannot create container: {exc}") from exc

    def security_opt(self) -> list[str]:
        """The ASLR seccomp profile as this engine takes it.

        Docker's API wants the profile's JSON text (its CLI reads the file); podman's
        compatible API wants a path, which it opens itself. The engine may run outside
        this machine's file system view (a VM using its host's engine), so the path is a
        copy beside the build files, where the task folders the engine mounts also live.
        """
        if self._security_opt is None:
            try:
                components = self.client.version().get("Components") or []
            except DockerException as exc:
                raise ProvisionError(f"container engine error: {exc}") from exc
            podman = any("podman" in str(c.get("Name", "")).lower() for c in components)
            if podman:
                copy = self.build_dir / SECCOMP_PROFILE.name
                copy.parent.mkdir(parents=True, exist_ok=True)
                if not copy.is_file() or copy.read_bytes() != SECCOMP_PROFILE.read_bytes():
                    copy.write_bytes(SECCOMP_PROFILE.read_bytes())
                self._security_opt = [f"seccomp={copy.resolve()}"]
            else:
                self._security_opt = [f"seccomp={SECCOMP_PROFILE.read_text()}"]
        return self._security_opt

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

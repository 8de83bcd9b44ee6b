"""What every executor (docker, host) provides, and the pieces they share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cloudbench.protocol import BenchmarkSettings

log = logging.getLogger(__name__)


class ProvisionError(Exception):
    """The benchmark environment (image, Ruby) could not be prepared."""


class MachineUnfit(ProvisionError):
    """This machine can never provision the task (no such Ruby): retrying here is futile.

    The task is still reported as provision_failed (another machine may manage it), and
    the runner stops claiming and exits with this message.
    """


class StartupError(Exception):
    """The runner cannot start work at all; the message names the cause and the fix."""


@dataclass(frozen=True)
class Provisioned:
    ruby_version: str  # as requested
    ruby_description: str  # RUBY_DESCRIPTION of the Ruby that will run
    ruby: str  # the Ruby command inside the execution environment
    image_id: str | None = None
    image_tag: str | None = None
    base_image: str | None = None  # ruby:<version>
    base_image_digest: str | None = None  # sha256:... the engine resolved it to
    image_env: list[str] = field(default_factory=list)  # KEY=VALUE the image itself sets


@dataclass(frozen=True)
class ImageSharing:
    """One benchmark image for many machines (executors/image_archive.py): `archive`, a
    benchmark-<sha256>.tar to load instead of building when it holds the image wanted;
    `save_dir`, where to save each image this machine builds or loads."""

    archive: Path | None = None
    save_dir: Path | None = None


@dataclass
class ExecutionSpec:
    task_id: int
    run_id: int
    runner_id: str
    benchmarks: BenchmarkSettings
    provisioned: Provisioned
    cpus: tuple[int, ...]
    work_dir: Path  # private to this task
    out_dir: Path  # receives ruby-bench's output.{json,csv,txt}
    log_path: Path  # stdout+stderr of the run (output.txt)
    timeout: float
    keep_on_failure: bool = False
    on_line: Callable[[str], None] = lambda _line: None
    cancel: threading.Event = field(default_factory=threading.Event)
    # Set on purpose (benchmarks.env, --pass-env); the runner's own environment is not passed.
    env: dict[str, str] = field(default_factory=dict)
    # Benchmark order (ordering.py): shuffled with this seed (None: ruby-bench's own order),
    # executables interleaved with ruby-bench's --interleave.
    seed: int | None = None
    interleave: bool = False
    # ruby-bench's `-e LABEL::RUBY FLAGS` values (runner/columns.py); empty: one per
    # benchmarks.executables entry on the provisioned Ruby.
    executables: list[str] = field(default_factory=list)
    # Only this benchmark (exactly this name), or "" to list what the filters select and
    # run nothing (ordering.PICK_PRELUDE); None: every selected benchmark.
    pick: str | None = None
    # The orchestrator the task came from: run ids are unique per orchestrator only (two
    # on one machine may both give a run the same second's id), so containers carry both.
    orchestrator_url: str = ""

    @property
    def cpuset(self) -> str:
        return ",".join(str(c) for c in self.cpus)


@dataclass
class ExecutionResult:
    exit_code: int | None
    command: list[str]
    timed_out: bool = False
    cancelled: bool = False
    container_id: str | None = None
    duration: float = 0.0
    environment: dict[str, str] = field(default_factory=dict)  # what ruby-bench ran with
    env_dropped: list[str] = field(default_factory=list)  # runner variables left out
    # Containers: where the engine's processes and the container ran (engine_affinity.py).
    engine_affinity: dict[str, Any] | None = None
    # Host: the benchmark's session (its processes, for the CPU watch); None in containers.
    session_id: int | None = None
    # Several Rubies in containers (runner/alternate.py): each ruby-bench process that ran.
    steps: list[ExecutionResult] = field(default_factory=list)


class Executor(Protocol):
    name: str

    def provision(
        self, ruby_version: str, benchmarks: BenchmarkSettings | None = None
    ) -> Provisioned:
        """Prepare (once, cached) what tasks for this Ruby version and this selection of
        benchmarks need (None: every benchmark of the suite)."""
        ...

    def execute(self, spec: ExecutionSpec) -> ExecutionResult:
        """Run ruby-bench for one task; stop early when spec.cancel is set."""
        ...

    def probe(self, provisioned: Provisioned, args: list[str]) -> tuple[int, str]:
        """`ruby ARGS` where the benchmarks run: (exit code, stdout and stderr)."""
        ...

    def close(self) -> None: ...


def pump_output(chunks: Iterable[bytes], log_path: Path, on_line: Callable[[str], None]) -> None:
    """Append raw output to the log as it comes and hand complete lines to on_line."""
    pending = b""
    with log_path.open("ab") as log_file:
        for chunk in chunks:
            log_file.write(chunk)
            log_file.flush()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                _deliver(on_line, line)
        if pending:
            _deliver(on_line, pending)


def _deliver(on_line: Callable[[str], None], line: bytes) -> None:
    try:
        on_line(line.decode("utf-8", errors="replace"))
    except Exception:  # a parsing bug must not stop the log from being written
        log.exception("output line handler failed")

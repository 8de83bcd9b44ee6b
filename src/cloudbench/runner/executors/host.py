"""Host executor: ruby-bench with one of this machine's Rubies, for machines without an engine."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cloudbench.protocol import BenchmarkSettings
from cloudbench.runner.environment import host_environment
from cloudbench.runner.executors.base import (
    ExecutionResult,
    ExecutionSpec,
    MachineUnfit,
    Provisioned,
    pump_output,
)
from cloudbench.runner.ordering import runner_arguments
from cloudbench.runner.output import OUT_NAME, build_command
from cloudbench.runner.ruby_bench import RubyBenchSource

log = logging.getLogger(__name__)
POLL = 0.25


@dataclass(frozen=True)
class RubyFound:
    path: str
    version: str  # RUBY_VERSION
    description: str  # RUBY_DESCRIPTION


def _probe(path: str) -> RubyFound | None:
    try:
        result = subprocess.run(
            [path, "-e", "print RUBY_VERSION, 0.chr, RUBY_DESCRIPTION"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    version, sep, description = result.stdout.partition("\0")
    if result.returncode != 0 or not sep:
        return None
    return RubyFound(os.path.realpath(path), version.strip(), description.strip())


def candidate_paths(home: Path | None = None) -> list[str]:
    """Rubies on PATH and in the usual version-manager folders."""
    home = home or Path.home()
    found: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        found.extend(sorted(glob.glob(os.path.join(directory, "ruby")) or []))
        found.extend(sorted(glob.glob(os.path.join(directory, "ruby[0-9]*"))))
    roots = [
        home / ".rubies",
        Path("/opt/rubies"),
        Path(os.environ.get("RBENV_ROOT", home / ".rbenv")) / "versions",
        Path(os.environ.get("ASDF_DATA_DIR", home / ".asdf")) / "installs" / "ruby",
    ]
    for root in roots:
        found.extend(sorted(glob.glob(str(root / "*" / "bin" / "ruby"))))
    return [p for p in dict.fromkeys(found) if os.access(p, os.X_OK) and os.path.isfile(p)]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.replace("-", ".").split("."))


def matches(requested: str, version: str) -> bool:
    """`3.1` matches 3.1.2; `3.1.2` matches only itself."""
    return version == requested or version.startswith(requested + ".")


def find_ruby(requested: str, home: Path | None = None) -> RubyFound:
    if requested == "system":
        default = shutil.which("ruby")
        found = _probe(default) if default else None
        if found is None:
            raise MachineUnfit('ruby_version "system": no working `ruby` on PATH — install Ruby')
        return found
    seen: dict[str, RubyFound] = {}
    for path in candidate_paths(home):
        probe = _probe(path)
        if probe is not None:
            seen.setdefault(probe.path, probe)
    hits = [r for r in seen.values() if matches(requested, r.version)]
    if not hits:
        listing = ", ".join(f"{r.version} ({r.path})" for r in seen.values()) or "none"
        raise MachineUnfit(
            f"no Ruby {requested} on this host (found: {listing}) — install Ruby {requested}, "
            "or use --executor docker (or auto) with a container engine"
        )
    # Prefer an exact version, then the newest patch release.
    return max(hits, key=lambda r: (r.version == requested, _version_key(r.version)))


class HostExecutor:
    name = "host"

    def __init__(self, source: RubyBenchSource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._provisioned: dict[str, Provisioned] = {}

    def close(self) -> None:
        pass

    def provision(
        self, ruby_version: str, benchmarks: BenchmarkSettings | None = None
    ) -> Provisioned:
        # The host's Ruby has whatever gems its owner installed: nothing to select.
        with self._lock:
            if ruby_version not in self._provisioned:
                ruby = find_ruby(ruby_version)
                log.info("ruby %s -> %s (%s)", ruby_version, ruby.path, ruby.description)
                self._provisioned[ruby_version] = Provisioned(
                    ruby_version, ruby.description, ruby.path
                )
            return self._provisioned[ruby_version]

    def probe(self, provisioned: Provisioned, args: list[str]) -> tuple[int, str]:
        env, _dropped = host_environment(os.environ, {}, {})
        try:
            done = subprocess.run(
                [provisioned.ruby, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 127, str(exc)
        return done.returncode, done.stdout + done.stderr

    def execute(self, spec: ExecutionSpec) -> ExecutionResult:
        # A private copy: gem benchmarks write lockfiles next to their Gemfile.
        checkout = spec.work_dir / "ruby-bench"
        shutil.copytree(self.source.path, checkout, ignore=shutil.ignore_patterns(".git"))
        ruby = spec.provisioned.ruby
        args, extra_env = build_command(
            spec.benchmarks, str(spec.out_dir / OUT_NAME), ruby, spec.executables
        )
        command = [
            ruby,
            *runner_arguments(args, spec.benchmarks, spec.seed, spec.interleave, spec.pick),
        ]
        if shutil.which("taskset"):
            command = ["taskset", "-c", spec.cpuset, *command]
        else:
            log.warning("taskset not found: task %d runs unpinned", spec.task_id)
        # An allowlist: RUBYOPT / RUBY_YJIT_ENABLE / tokens of the runner never reach it.
        env, dropped = host_environment(os.environ, extra_env, spec.env)
        # Tools the benchmarks spawn (bundle, gem) must belong to the Ruby under test.
        env["PATH"] = f"{os.path.dirname(ruby)}{os.pathsep}{env.get('PATH', '')}"
        result = self._run(spec, command, env, checkout)
        result.environment, result.env_dropped = env, dropped
        return result

    def _run(
        self, spec: ExecutionSpec, command: list[str], env: dict[str, str], cwd: Path
    ) -> ExecutionResult:
        result = ExecutionResult(exit_code=None, command=command)
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own group: kill it whole
        )
        result.session_id = proc.pid  # its own session: every benchmark process is in it
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        chunks = iter(lambda: os.read(fd, 65536), b"")
        pump = threading.Thread(
            target=pump_output, args=(chunks, spec.log_path, spec.on_line), daemon=True
        )
        pump.start()
        while proc.poll() is None:
            if spec.cancel.is_set() or time.monotonic() - started > spec.timeout:
                result.cancelled = spec.cancel.is_set()
                result.timed_out = not result.cancelled
                _kill_group(proc)
                break
            time.sleep(POLL)
        proc.wait()
        pump.join(timeout=30)
        proc.stdout.close()
        result.exit_code = proc.returncode
        result.duration = time.monotonic() - started
        return result


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)

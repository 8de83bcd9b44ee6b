"""The container engine's housekeeping off the benchmark CPUs, and ASLR off, per engine.

Real engines of the test's own (tests/engines.py): rootful podman, rootless podman and
Debian's dockerd, each on a private socket so pinning it touches no other test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudbench.platform.cpus import parse_cpu_list
from cloudbench.protocol import AslrState, BenchmarkSettings
from cloudbench.runner.executors.base import ExecutionSpec
from cloudbench.runner.executors.docker import DockerExecutor
from cloudbench.runner.executors.engine_affinity import (
    EngineAffinity,
    engine_daemons,
    process_cpus,
)
from cloudbench.runner.ruby_bench import RubyBenchSource
from cloudbench.runner.verify import verify_file
from tests import engines
from tests.cpus import leased

ALL = set(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(ALL) < 2, reason="needs 2 CPUs to keep one for housekeeping")
BENCH, HOUSE = min(ALL), max(ALL)

# A stand-in daemon: a real multi-threaded process serving a unix socket, as engines do.
DAEMON = """
import socket, sys, threading, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()
for _ in range(4):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
print("ready", flush=True); s.accept()
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    sock = tmp_path / "engine.sock"
    proc = subprocess.Popen([sys.executable, "-c", DAEMON, str(sock)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    yield proc.pid, sock
    proc.kill()
    proc.wait()


@needs_two
def test_pins_every_thread_reads_back_and_restores(daemon: tuple[int, Path]) -> None:
    pid, sock = daemon
    assert [p.pid for p in engine_daemons(sock)] == [pid]
    affinity = EngineAffinity((HOUSE,), {BENCH}, pin=True, docker_host=f"unix://{sock}")
    facts = affinity.pin_daemons()
    assert [(f["pid"], f["cpus"]) for f in facts] == [(pid, str(HOUSE))]
    threads = os.listdir(f"/proc/{pid}/task")
    assert len(threads) >= 5
    assert all(os.sched_getaffinity(int(t)) == {HOUSE} for t in threads)
    affinity.restore()
    assert process_cpus(pid) == ALL
    assert all(os.sched_getaffinity(int(t)) == ALL for t in threads)


@needs_two
def test_never_pins_onto_benchmark_cpus(daemon: tuple[int, Path]) -> None:
    pid, sock = daemon
    host = f"unix://{sock}"
    # Housekeeping not isolated (one core, --housekeeping-cpus none): the engine stays.
    overlap = EngineAffinity(tuple(ALL), ALL, pin=True, note="one physical core", docker_host=host)
    facts = overlap.check_task(None, (BENCH,))
    assert process_cpus(pid) == ALL
    assert facts["off_benchmark_cpus"] is False and facts["note"] == "one physical core"
    off = EngineAffinity((HOUSE,), {BENCH}, pin=False, docker_host=host)
    assert off.check_task(None, (BENCH,))["off_benchmark_cpus"] is False
    assert process_cpus(pid) == ALL and "not pinned" in str(off.note)


def test_remote_engine_is_not_claimed() -> None:
    remote = EngineAffinity((1,), {0}, pin=True, docker_host="tcp://10.0.0.9:2375")
    facts = remote.check_task(None, (0,))
    assert facts["daemons"] == [] and facts["off_benchmark_cpus"] is False
    assert "not on this machine" in facts["note"]


# ---------------------------------------------------------------- real engines
def _run_fib(ex: DockerExecutor, work: Path) -> tuple[dict[str, Any], AslrState]:
    (work / "out").mkdir(parents=True)
    work.chmod(0o777)
    (work / "out").chmod(0o777)  # rootless: the container's root is another user here
    spec = ExecutionSpec(
        task_id=1,
        run_id=515151,
        runner_id="affinity-test",
        benchmarks=BenchmarkSettings.model_validate({"names": ["fib"]}),
        provisioned=ex.provision("3.1"),
        cpus=(BENCH,),
        work_dir=work,
        out_dir=work / "out",
        log_path=work / "output.txt",
        timeout=180,
    )
    with leased((BENCH,), "engine-affinity"):  # as any cloudbench benchmark holds it
        result = ex.execute(spec)
    assert result.exit_code == 0, (work / "output.txt").read_text()[-2000:]
    assert result.engine_affinity is not None
    verification = verify_file(
        work / "out" / "output.json", spec.benchmarks.column_names(), spec.provisioned.ruby
    )
    assert verification.executables_verified
    return result.engine_affinity, verification.aslr


def _executor(host: str, source: RubyBenchSource, build: Path) -> DockerExecutor:
    import docker

    affinity = EngineAffinity((HOUSE,), {BENCH}, pin=True, docker_host=host)
    return DockerExecutor(
        source, build, client=docker.DockerClient(base_url=host), affinity=affinity
    )


def _daemon_pids(host: str) -> list[int]:
    return [p.pid for p in engine_daemons(Path(host.removeprefix("unix://")))]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """World-traversable: a rootless engine's user must reach its socket and the mounts."""
    path = Path(tempfile.mkdtemp(prefix="cloudbench-engine-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.container
@needs_two
def test_rootful_podman_engine_off_benchmark_cpus(
    fake_source: RubyBenchSource, shared_dir: Path
) -> None:
    with engines.rootful_podman(shared_dir) as host:
        ex = _executor(host, fake_source, shared_dir / "build")
        try:
            facts, aslr = _run_fib(ex, shared_dir / "task")
        finally:
            ex.close()
        assert aslr is AslrState.disabled
        assert [d["name"] for d in facts["daemons"]] == ["podman"]
        assert facts["helper"]["name"] == "conmon"
        assert facts["helper"]["cpus"] == str(HOUSE)
        assert facts["container_cpus"] == str(BENCH) and facts["cpuset_applied"] is True
        assert facts["off_benchmark_cpus"] is True, facts
        # Restored when the executor closes: the engine is not left pinned.
        assert all(process_cpus(pid) == ALL for pid in _daemon_pids(host))


@pytest.mark.container
@needs_two
def test_docker_engine_off_benchmark_cpus_and_aslr(
    fake_source: RubyBenchSource, shared_dir: Path
) -> None:
    with engines.dockerd(shared_dir) as host:
        ex = _executor(host, fake_source, shared_dir / "build")
        assert ex.security_opt()[0].startswith("seccomp={")  # Docker takes the JSON itself
        try:
            facts, aslr = _run_fib(ex, shared_dir / "task")
        finally:
            ex.close()
        assert aslr is AslrState.disabled
        names = sorted(d["name"] for d in facts["daemons"])
        assert names == ["containerd", "dockerd"]
        assert facts["helper"]["name"] == "containerd-shim-runc-v2"
        assert facts["container_cpus"] == str(BENCH) and facts["cpuset_applied"] is True
        assert facts["off_benchmark_cpus"] is True, facts
        assert all(process_cpus(pid) == ALL for pid in _daemon_pids(host))


def _cgroup_v1() -> bool:
    return not Path("/sys/fs/cgroup/cgroup.controllers").exists()


@pytest.mark.container
@needs_two
def test_rootless_podman_aslr_and_what_its_cpuset_really_is(
    fake_source: RubyBenchSource, shared_dir: Path
) -> None:
    with engines.rootless_podman(shared_dir) as (host, user):
        ex = _executor(host, fake_source, shared_dir / "build")
        try:
            facts, aslr = _run_fib(ex, shared_dir / "task")
        finally:
            ex.close()
        assert aslr is AslrState.disabled  # the seccomp profile works without root too
        assert facts["helper"]["name"] == "conmon"
        assert facts["off_benchmark_cpus"] is True, facts  # root may pin the user's engine
        # The benchmark ran on its CPU: taskset in the container, because (below) rootless
        # podman on cgroup v1 ignores --cpuset-cpus.
        assert facts["container_cpus"] == str(BENCH) and facts["cpuset_applied"] is True
        import docker

        client = docker.DockerClient(base_url=host)
        try:
            out = client.containers.run(
                engines.RUBY_IMAGE,
                ["grep", "Cpus_allowed_list", "/proc/self/status"],
                cpuset_cpus=str(BENCH),
                remove=True,
                network_mode="none",
            )
        finally:
            client.close()
        allowed = out.decode().split()[-1]
        assert parse_cpu_list(allowed) == (ALL if _cgroup_v1() else {BENCH}), out
        assert user.pw_uid != 0


def test_pinning_default_is_on_in_the_cloud_and_off_for_local() -> None:
    from cloudbench.runner.settings import RunnerSettings

    assert RunnerSettings(runner_token="t", provider="aws").pins_engine
    assert not RunnerSettings(runner_token="t", provider="local").pins_engine
    assert RunnerSettings(runner_token="t", provider="local", pin_engine=True).pins_engine

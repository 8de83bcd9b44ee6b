"""The container path against a real Docker-compatible engine (podman in CI)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudbench.protocol import AslrState, BenchmarkSettings
from cloudbench.runner.executors.base import ExecutionResult, ExecutionSpec, ProvisionError
from cloudbench.runner.executors.docker import DockerExecutor
from cloudbench.runner.output import read_result_json
from cloudbench.runner.ruby_bench import RubyBenchSource
from cloudbench.runner.verify import verify_file
from tests.cpus import leased

pytestmark = pytest.mark.container
RUBY = "3.1"  # the tag the engine recipe provides


@pytest.fixture(scope="module")
def executor(
    fake_source: RubyBenchSource, tmp_path_factory: pytest.TempPathFactory, container_engine: str
) -> Iterator[DockerExecutor]:
    ex = DockerExecutor(fake_source, tmp_path_factory.mktemp("build"))
    yield ex
    ex.close()


@pytest.fixture(autouse=True)
def _cpus_leased() -> Iterator[None]:
    """The specs pin to this process's CPUs: their leases, as any cloudbench benchmark."""
    with leased(sorted(os.sched_getaffinity(0)), "docker-executor"):
        yield


def _spec(
    tmp_path: Path, ex: DockerExecutor, task_id: int, cpus: tuple[int, ...], **bench: object
) -> ExecutionSpec:
    work = tmp_path / f"task{task_id}"
    (work / "out").mkdir(parents=True)
    return ExecutionSpec(
        task_id=task_id,
        run_id=424242,
        runner_id=f"test-{task_id}",
        benchmarks=BenchmarkSettings.model_validate(bench),
        provisioned=ex.provision(RUBY),
        cpus=cpus,
        work_dir=work,
        out_dir=work / "out",
        log_path=work / "output.txt",
        timeout=120,
    )


def _ours(ex: DockerExecutor) -> list[Any]:
    return list(
        ex.client.containers.list(all=True, filters={"label": ["cloudbench.run_id=424242"]})
    )


def test_refuses_system_ruby(executor: DockerExecutor) -> None:
    with pytest.raises(ProvisionError, match="host executor"):
        executor.provision("system")


def test_image_cached_and_run_succeeds(executor: DockerExecutor, tmp_path: Path) -> None:
    first = executor.provision(RUBY)
    assert first.ruby_description.startswith("ruby 3.1")
    assert first.image_tag and executor.client.images.get(first.image_tag).id == first.image_id
    # The base image is pinned: its digest is recorded and part of the derived tag.
    base = executor.client.images.get(f"ruby:{RUBY}")
    assert first.base_image_digest and any(
        d.endswith(first.base_image_digest) for d in base.attrs["RepoDigests"]
    )
    assert first.base_image_digest.split(":")[1][:12] in first.image_tag
    assert first.ruby.startswith("/")  # RbConfig.ruby inside the image
    spec = _spec(
        tmp_path,
        executor,
        1,
        (0,),
        names=["fib"],
        executables=["interp", "yjit"],
        bench_iterations=1,
        warmup_iterations=0,
    )
    lines: list[str] = []
    spec.on_line = lines.append
    result = executor.execute(spec)
    assert result.exit_code == 0, spec.log_path.read_text()
    assert 'Running benchmark "fib" (1/1)' in lines
    assert read_result_json(spec.out_dir / "output.json").benchmarks["yjit"] == ["fib"]
    # This execution's container is removed (other containers of the label may be another
    # test's, still being torn down by the engine).
    assert result.container_id and result.container_id not in {c.id for c in _ours(executor)}
    # ASLR off inside the container, read from ruby-bench's own command_line.
    v = verify_file(spec.out_dir / "output.json", ["interp", "yjit"], first.ruby)
    assert v.aslr is AslrState.disabled and v.executables_verified, v


def test_seccomp_profile_is_what_lets_setarch_work(executor: DockerExecutor) -> None:
    """The premise: the engine's default profile refuses personality(ADDR_NO_RANDOMIZE);
    ours (default + that value) allows it and sets the flag (0x0040000)."""
    from docker.errors import ContainerError

    script = ["sh", "-c", "setarch $(uname -m) -R cat /proc/self/personality"]
    run = executor.client.containers.run
    with pytest.raises(ContainerError, match="personality"):
        run(f"ruby:{RUBY}", script, remove=True, network_mode="none")
    out = run(
        f"ruby:{RUBY}",
        script,
        remove=True,
        network_mode="none",
        security_opt=executor.security_opt(),
    )
    assert bytes(out).strip() == b"00040000"


def test_two_slots_in_parallel_on_own_cpus_then_killed(
    executor: DockerExecutor, tmp_path: Path
) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    specs = [_spec(tmp_path, executor, 10 + i, (cpus[i],), names=["sleepy"]) for i in (0, 1)]
    results: dict[int, ExecutionResult] = {}
    threads = [
        threading.Thread(target=lambda s=s: results.__setitem__(s.task_id, executor.execute(s)))
        for s in specs
    ]
    for thread in threads:
        thread.start()
    running = _wait_running(executor, 2)
    cpusets = {c.labels["cloudbench.task_id"]: c.attrs["HostConfig"]["CpusetCpus"] for c in running}
    assert cpusets == {"10": str(cpus[0]), "11": str(cpus[1])}
    assert all(c.attrs["HostConfig"]["NetworkMode"] == "none" for c in running)
    started = time.monotonic()
    for spec in specs:  # what a 409 heartbeat does
        spec.cancel.set()
    for thread in threads:
        thread.join(timeout=60)
    assert time.monotonic() - started < 30
    assert all(r.cancelled and r.exit_code is None for r in results.values())
    assert _ours(executor) == []


def _wait_running(ex: DockerExecutor, count: int) -> list[Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = [c for c in _ours(ex) if c.status == "running"]
        if len(running) == count:
            return running
        time.sleep(0.2)
    raise AssertionError(f"{count} containers never ran together: {_ours(ex)}")


def test_one_image_digest_pins_one_ruby_only(
    executor: DockerExecutor, fake_source: RubyBenchSource, tmp_path: Path
) -> None:
    """CLOUDBENCH_RUBY_IMAGE_DIGEST names one image: a second Ruby under it would be the
    same Ruby again, so a task with several Rubies is refused at provision."""
    digest = executor.provision(RUBY).base_image_digest
    assert digest
    pinned = DockerExecutor(fake_source, tmp_path / "build", base_digest=digest)
    try:
        assert pinned.provision(RUBY).base_image_digest == digest
        with pytest.raises(
            ProvisionError,
            match=r"^ruby_version 3\.4: .*pins one image .*"
            r"Ruby 3\.1\); several Rubies need one image each",
        ):
            pinned.provision("3.4")
    finally:
        pinned.close()

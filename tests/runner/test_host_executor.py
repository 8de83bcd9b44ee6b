from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudbench.protocol import BenchmarkSettings
from cloudbench.runner.executors.base import ExecutionSpec, ProvisionError
from cloudbench.runner.executors.host import HostExecutor, find_ruby, matches
from cloudbench.runner.output import ProgressTracker, read_result_json
from cloudbench.runner.ruby_bench import RubyBenchSource
from tests.cpus import leased

pytestmark = pytest.mark.usefixtures("ruby", "cpu0_leased")


@pytest.fixture
def cpu0_leased() -> Iterator[None]:
    """The specs below pin to CPU 0: its lease, as any cloudbench benchmark holds."""
    with leased((0,), "host-executor"):
        yield


def test_version_matching() -> None:
    assert matches("3.1", "3.1.2")
    assert matches("3.1.2", "3.1.2")
    assert not matches("3.1", "3.10.0")
    assert not matches("3.1.3", "3.1.2")


def test_find_ruby_prefix_system_and_missing() -> None:
    system = find_ruby("system")
    assert system.description.startswith("ruby ")
    wanted = ".".join(system.version.split(".")[:2])
    assert find_ruby(wanted).version == system.version
    with pytest.raises(ProvisionError, match="found: .*" + system.version):
        find_ruby("9.9")


def _spec(tmp_path: Path, executor: HostExecutor, **bench: object) -> ExecutionSpec:
    work = tmp_path / "task"
    (work / "out").mkdir(parents=True)
    settings = BenchmarkSettings.model_validate(bench)
    return ExecutionSpec(
        task_id=1,
        run_id=1,
        runner_id="r-0-x",
        benchmarks=settings,
        provisioned=executor.provision("system"),
        cpus=(0,),
        work_dir=work,
        out_dir=work / "out",
        log_path=work / "output.txt",
        timeout=60,
    )


def test_runs_fake_suite_and_reports_progress(tmp_path: Path, fake_source: RubyBenchSource) -> None:
    executor = HostExecutor(fake_source)
    spec = _spec(
        tmp_path,
        executor,
        names=["fib", "loops"],
        executables=["interp", "yjit"],
        warmup_iterations=0,
        bench_iterations=1,
    )
    tracker = ProgressTracker(2)
    seen: list[tuple[str | None, float]] = []

    def on_line(line: str) -> None:
        if tracker.feed(line):
            seen.append(tracker.snapshot())

    spec.on_line = on_line
    result = executor.execute(spec)
    assert result.exit_code == 0, spec.log_path.read_text()
    assert result.command[:3] == ["taskset", "-c", "0"]
    assert [pct for _, pct in seen] == [0.0, 25.0, 50.0, 75.0]
    summary = read_result_json(spec.out_dir / "output.json")
    assert summary.benchmarks == {"interp": ["fib", "loops"], "yjit": ["fib", "loops"]}
    assert "Output:" in spec.log_path.read_text()


def test_failing_benchmark_exits_nonzero(tmp_path: Path, fake_source: RubyBenchSource) -> None:
    executor = HostExecutor(fake_source)
    spec = _spec(tmp_path, executor, names=["failing", "fib"], bench_iterations=1)
    result = executor.execute(spec)
    assert result.exit_code == 1
    assert "Failed benchmarks:" in spec.log_path.read_text()


def test_cancel_and_timeout_kill_quickly(tmp_path: Path, fake_source: RubyBenchSource) -> None:
    executor = HostExecutor(fake_source)
    spec = _spec(tmp_path, executor, names=["sleepy"], bench_iterations=1)
    threading.Timer(1.0, spec.cancel.set).start()
    started = time.monotonic()
    result = executor.execute(spec)
    assert result.cancelled and not result.timed_out
    assert time.monotonic() - started < 10
    spec2 = _spec(tmp_path / "b", executor, names=["sleepy"], bench_iterations=1)
    spec2.timeout = 1.0
    result2 = executor.execute(spec2)
    assert result2.timed_out and result2.exit_code != 0

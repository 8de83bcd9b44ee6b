"""The Ruby matrix in a real runner process (host executor, fake suite) against a real
orchestrator on Postgres; metadata.json is read from the uploaded tarball.

Only Debian's Ruby 3.1 exists here, so the positive ZJIT and second-Ruby paths use FAKE
RUBIES: bash wrappers around the host's Ruby 3.1 that claim to be Ruby 3.4.1 (YJIT, no
ZJIT: `--zjit` reaches the real 3.1, which refuses it) and Ruby 4.0.1 (with a fake ZJIT:
`--zjit` sets `RubyVM::ZJIT.enabled?` and `+ZJIT` in RUBY_DESCRIPTION). They say so in
their own RUBY_DESCRIPTION ("fake"). The negative path uses the real Ruby 3.1.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.orchestrator_proc import OrchestratorProcess
from tests.runner.conftest import FAKE_SUITE
from tests.runner.fake_rubies import FAKE_IMAGE_REPO, fake_ruby, fake_ruby_image

pytestmark = pytest.mark.usefixtures("ruby")


def _run(
    orch: OrchestratorProcess,
    tmp_path: Path,
    body: dict[str, Any],
    home: Path | None = None,
    executor: str = "host",
    more: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    with orch.client() as http:
        response = http.post("/runs", json=body)
        assert response.status_code == 201, response.text
        run_id = int(response.json()["run_id"])
    env = {
        **os.environ,
        "CLOUDBENCH_RUNNER_TOKEN": orch.runner_token,
        "CLOUDBENCH_HEARTBEAT_INTERVAL": "1",
    }
    if home is not None:
        env["HOME"] = str(home)
    log = tmp_path / f"runner-{run_id}.log"
    with log.open("wb") as out:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "cloudbench.runner",
                "--orchestrator-url",
                orch.url,
                "--provider",
                "local",
                "--instance-type",
                "mx",
                "--run-id",
                str(run_id),
                "--executor",
                executor,
                "--ruby-bench",
                str(FAKE_SUITE),
                "--work-dir",
                str(tmp_path / "work"),
                *more,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
    assert proc.returncode == 0, log.read_text()[-4000:]
    with orch.client() as http:
        tasks: list[dict[str, Any]] = http.get(f"/runs/{run_id}/tasks").json()["tasks"]
    for task in tasks:
        key = task["result_key"] or task["error_key"]
        (path,) = [p for p in orch.state_dir.rglob("*.tar.gz") if str(p).endswith(key)]
        with tarfile.open(path) as tar:
            task["files"] = tar.getnames()
            member = tar.extractfile("metadata.json")
            assert member is not None
            task["metadata"] = json.loads(member.read())
            if "output.txt" in task["files"]:
                text = tar.extractfile("output.txt")
                task["output"] = text.read().decode() if text else ""
    return tasks


def _body(rubies: dict[str, Any], executables: list[Any], tasks: int = 1) -> dict[str, Any]:
    return {
        **rubies,
        "per_instance_type": {"tasks": tasks},
        "local": ["mx"],
        "benchmarks": {
            "names": ["fib", "loops"],
            "executables": executables,
            "warmup_iterations": 0,
            "bench_iterations": 1,
        },
    }


def test_zjit_on_real_ruby_3_1_is_refused_before_any_benchmark(
    orchestrator_server: OrchestratorProcess, tmp_path: Path
) -> None:
    body = _body({"ruby_version": "3.1"}, ["interp", "yjit", "zjit"])
    (task,) = _run(orchestrator_server, tmp_path, body)
    assert (task["status"], task["error_type"]) == ("failed", "executable_mismatch"), task
    assert task["error_message"] == (
        "Ruby 3.1.2 has no ZJIT: ask for Ruby 4.0 or later, or drop zjit"
    )
    assert "Running benchmark" not in task.get("output", "")  # nothing ran, nothing labelled
    assert task["metadata"]["execution"] is None


def test_an_option_the_real_ruby_refuses_fails_before_any_benchmark(
    orchestrator_server: OrchestratorProcess, tmp_path: Path
) -> None:
    bad = {"name": "yjit-bad", "jit": "yjit", "options": ["--yjit-bogus=1"]}
    (task,) = _run(orchestrator_server, tmp_path, _body({"ruby_version": "3.1"}, ["yjit", bad]))
    assert (task["status"], task["error_type"]) == ("failed", "executable_mismatch"), task
    message = task["error_message"]
    assert message.startswith(
        "Ruby 3.1.2 does not accept --yjit-bogus=1 (executable 'yjit-bad'): "
    ), message
    assert "invalid yjit option" in message and message.endswith("drop or fix the option")
    assert "Running benchmark" not in task.get("output", "")
    assert task["metadata"]["execution"] is None


@pytest.mark.container
def test_zjit_in_the_official_ruby_3_1_image_is_refused_too(
    orchestrator_server: OrchestratorProcess, tmp_path: Path, container_engine: str
) -> None:
    body = _body({"ruby_version": "3.1"}, ["yjit", "zjit"])
    (task,) = _run(orchestrator_server, tmp_path, body, executor="docker")
    assert task["error_type"] == "executable_mismatch", task
    # The image's own patch release (whatever ruby:3.1 resolves to on this engine).
    line = r"Ruby 3\.1\.\d+ has no ZJIT: ask for Ruby 4\.0 or later, or drop zjit"
    assert re.fullmatch(line, task["error_message"]), task["error_message"]
    assert task["metadata"]["execution"] is None


def test_two_fake_rubies_three_engines_tuned_yjit_paired_in_one_process(
    orchestrator_server: OrchestratorProcess, tmp_path: Path, ruby: str
) -> None:
    home = tmp_path / "home"
    real = os.path.realpath(ruby)
    fake_ruby(home, "3.4.1", has_zjit=False, real=real)
    fake_ruby(home, "4.0.1", has_zjit=True, real=real)
    executables = [
        "interp",
        {"name": "yjit-64m", "jit": "yjit", "options": ["--yjit-exec-mem-size=64"]},
        "zjit",
    ]
    # Ruby 3.4 (fake) has no ZJIT: refused at provision, with the version it reports.
    both = _body({"ruby_versions": ["3.4", "4.0"]}, executables)
    (task,) = _run(orchestrator_server, tmp_path, both, home)
    assert task["error_type"] == "executable_mismatch", task
    assert task["error_message"] == (
        "Ruby 3.4.1 has no ZJIT: ask for Ruby 4.0 or later, or drop zjit"
    )
    # Without zjit for 3.4 there is no way to ask per Ruby, so: yjit on both Rubies.
    body = _body({"ruby_versions": ["3.4", "4.0"]}, executables[:2], tasks=2)
    tasks = _run(orchestrator_server, tmp_path, body, home)
    assert [t["status"] for t in tasks] == ["completed"] * 2, tasks
    meta = tasks[0]["metadata"]
    assert meta["format_version"] == 6
    assert meta["ruby"]["ruby_versions"] == ["3.4", "4.0"]
    exes = meta["ruby"]["executables"]
    assert set(exes) == {"interp@3.4", "yjit-64m@3.4", "interp@4.0", "yjit-64m@4.0"}
    assert exes["yjit-64m@4.0"]["engine_check"]["yjit_enabled"] is True
    assert exes["yjit-64m@4.0"]["engine_check"]["options"] == {
        "--yjit-exec-mem-size=64": "not verifiable"
    }
    assert "ruby 4.0.1 (fake" in exes["interp@4.0"]["ruby_descriptions"][0]
    assert meta["checks"]["executables_verified"] is True
    # Paired: every benchmark ran on all four columns before the next one started.
    ran = meta["benchmark_order"]["ran"]
    assert len(ran) == 8 and meta["benchmark_order"]["interleaved"] is True
    assert {tuple(r) for r in ran[:4]} == {(e, ran[0][1]) for e in exes}
    columns = meta["benchmark_order"]["columns"]
    assert [(c["ruby_version"], c["executable"]) for c in columns] == [
        ("3.4", "interp"),
        ("3.4", "yjit-64m"),
        ("4.0", "interp"),
        ("4.0", "yjit-64m"),
    ]
    memory = meta["memory"]["yjit-64m@4.0"]
    assert memory["peak_rss_bytes"] > 0 and memory["overhead_vs_interp"]["vs"] == "interp@4.0"
    assert set(memory["benchmarks"]) == {"fib", "loops"}


def test_zjit_on_fake_ruby_4_is_labelled_and_verified(
    orchestrator_server: OrchestratorProcess, tmp_path: Path, ruby: str
) -> None:
    home = tmp_path / "home"
    fake_ruby(home, "4.0.1", has_zjit=True, real=os.path.realpath(ruby))
    body = _body({"ruby_version": "4.0"}, ["interp", "yjit", "zjit"])
    (task,) = _run(orchestrator_server, tmp_path, body, home)
    assert task["status"] == "completed", task
    exes = task["metadata"]["ruby"]["executables"]
    assert exes["zjit"]["engine_check"]["zjit_enabled"] is True
    assert exes["zjit"]["engine_check"]["yjit_enabled"] is False
    assert all("+ZJIT" in d for d in exes["zjit"]["ruby_descriptions"])
    assert not any("+ZJIT" in d for d in exes["yjit"]["ruby_descriptions"])
    assert task["metadata"]["checks"]["executables_verified"] is True


@pytest.mark.container
def test_two_fake_ruby_images_alternate_by_benchmark_one_process_each(
    orchestrator_server: OrchestratorProcess, tmp_path: Path, container_engine: str
) -> None:
    """STAND-IN RUBY IMAGES (the official ruby:3.1 image with a fake `ruby` claiming
    3.4.1 or 4.0.1, tests/runner/fake_rubies.py): one image per Ruby, so the task runs one
    ruby-bench process per (Ruby, benchmark), alternating, and merges their results."""
    fake_ruby_image(tmp_path, "3.4.1", has_zjit=False)
    fake_ruby_image(tmp_path, "4.0.1", has_zjit=True)
    executables = [
        "interp",
        {"name": "yjit-64m", "jit": "yjit", "options": ["--yjit-exec-mem-size=64"]},
    ]
    body = _body({"ruby_versions": ["3.4", "4.0"]}, executables)
    body["benchmarks"]["names"] = ["fib", "loops", "strings"]
    more = ("--ruby-image", FAKE_IMAGE_REPO)
    (task,) = _run(orchestrator_server, tmp_path, body, executor="docker", more=more)
    assert task["status"] == "completed", task
    meta = task["metadata"]
    assert meta["executor"] == "docker" and meta["checks"]["executables_verified"] is True
    exes = meta["ruby"]["executables"]
    assert "ruby 3.4.1 (fake" in exes["yjit-64m@3.4"]["ruby_descriptions"][0]
    assert "ruby 4.0.1 (fake" in exes["interp@4.0"]["ruby_descriptions"][0]
    assert all("+YJIT" in d for d in exes["yjit-64m@4.0"]["ruby_descriptions"])
    rubies = meta["ruby"]["rubies"]
    assert rubies["3.4"]["image_id"] != rubies["4.0"]["image_id"]
    assert rubies["4.0"]["base_image"] == f"{FAKE_IMAGE_REPO}:4.0"
    order = meta["benchmark_order"]
    assert order["interleaved"] is True and order["shuffled"] is True
    assert order["alternated"].startswith("by benchmark")
    listing, *runs = order["processes"]
    assert (listing["ruby_version"], listing["benchmark"], listing["exit_code"]) == ("3.4", None, 0)
    # One process per (Ruby, benchmark), each in its own container; benchmarks in the
    # seeded order, the Rubies alternating and reversed on every other benchmark.
    assert len(runs) == 6 and all(r["exit_code"] == 0 for r in runs), runs
    assert len({r["container_id"] for r in runs}) == 6
    shuffled = ["fib", "loops", "strings"]
    random.Random(order["seed"]).shuffle(shuffled)
    assert [(r["benchmark"], r["ruby_version"]) for r in runs] == [
        (shuffled[0], "3.4"),
        (shuffled[0], "4.0"),
        (shuffled[1], "4.0"),
        (shuffled[1], "3.4"),
        (shuffled[2], "3.4"),
        (shuffled[2], "4.0"),
    ]
    assert all(
        r["labels"] == [f"interp@{r['ruby_version']}", f"yjit-64m@{r['ruby_version']}"]
        for r in runs
    )
    # What really ran (from the progress lines), in that order: both columns of a Ruby
    # in its process, interleaved, before the other Ruby's process.
    ran = [tuple(r) for r in order["ran"]]
    assert [b for _, b in ran[::2]] == [r["benchmark"] for r in runs]
    assert [e.split("@")[1] for e, _ in ran[::2]] == [r["ruby_version"] for r in runs]
    assert set(ran) == {
        (f"{e}@{v}", b) for e in ("interp", "yjit-64m") for v in ("3.4", "4.0") for b in shuffled
    }
    # The merged output.json: every (label, benchmark), each from its one process.
    assert task["files"].count("output.json") == 1
    memory = meta["memory"]["yjit-64m@4.0"]
    assert set(memory["benchmarks"]) == set(shuffled) and memory["peak_rss_bytes"] > 0
    checks = meta["checks"]
    assert checks["aslr_disabled"] and checks["env_clean"], (checks, meta["environment"])
    # Every process's container is the task's own: none of them counts as a neighbour.
    # (Other helpers' benchmarks may share this machine: the check must agree with them.)
    seen, others = meta["slot"]["seen_on_cpus"], meta["slot"]["concurrent"]
    ours = [p for p in seen["pinned"] if p["cpus_allowed"] == meta["cpuset"]]
    assert not ours or any(c["same_cpus"] for c in others), (ours, others)
    clear = not seen["pinned"] and not any(c["same_cpus"] for c in others)
    assert checks["own_core"] is clear, (seen, others)

"""`PUT/GET /ruby-bench/{run_id}`: the suite the master ships with a run, over real HTTP.

Black box: a real orchestrator (in-process uvicorn, real database), a real tarball of the
test suite's small ruby-bench packed as the master packs it (master/providers/suite.py).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudbench.master.client import OrchestratorClient
from cloudbench.master.providers.base import ProviderError
from cloudbench.master.providers.suite import pack, ship
from cloudbench.protocol import MAX_SUITE_BYTES, SUITE_SHA256_HEADER
from tests.orchestrator_inproc import OrchestratorFactory
from tests.orchestrator_proc import OrchestratorProcess

SUITE = Path(__file__).resolve().parents[1] / "fake_ruby_bench"
RUN = {
    "ruby_version": "3.1",
    "per_instance_type": {"tasks": 1},
    "azure": [{"instance_type": "Standard_D2pls_v6"}],
    "benchmarks": {"names": ["fib"]},
}


def _run(orch: OrchestratorProcess) -> int:
    with orch.client() as admin:
        created = admin.post("/runs", json=RUN)
        assert created.status_code == 201, created.text
        return int(created.json()["run_id"])


def test_the_master_stores_the_suite_and_a_runner_downloads_it_with_its_sha256(
    sqlite_url: str, tmp_path: Path, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(sqlite_url, server="in_process")
    run_id = _run(orch)
    packed = pack(str(SUITE), tmp_path / "ruby-bench.tar.gz").read_bytes()
    sha = hashlib.sha256(packed).hexdigest()
    with orch.client(role="runner") as runner:
        missing = runner.get(f"/ruby-bench/{run_id}")
        assert missing.status_code == 404, missing.text
        assert f"run {run_id} has no shipped ruby-bench suite" in missing.json()["error"]
    with orch.client() as admin:
        stored = admin.put(f"/ruby-bench/{run_id}", params={"sha256": sha}, content=packed)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"run_id": run_id, "sha256": sha, "size": len(packed)}
    with orch.client(role="runner") as runner:
        got = runner.get(f"/ruby-bench/{run_id}")
    assert got.status_code == 200, got.text
    assert got.headers[SUITE_SHA256_HEADER] == sha
    assert hashlib.sha256(got.content).hexdigest() == sha
    with tarfile.open(fileobj=io.BytesIO(got.content)) as tar:
        names = tar.getnames()
    assert "./run_benchmarks.rb" in names and not any(".git" in n.split("/") for n in names)
    # A second upload (a resumed run packs again) replaces the first.
    other = pack(str(SUITE / "benchmarks"), tmp_path / "b.tar.gz").read_bytes()
    other_sha = hashlib.sha256(other).hexdigest()
    with orch.client() as admin:
        again = admin.put(f"/ruby-bench/{run_id}", params={"sha256": other_sha}, content=other)
        assert again.status_code == 200, again.text
        assert admin.get(f"/ruby-bench/{run_id}").headers[SUITE_SHA256_HEADER] == other_sha


def test_only_the_admin_stores_and_bad_input_names_the_field(
    sqlite_url: str, tmp_path: Path, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(sqlite_url, server="in_process")
    run_id = _run(orch)
    packed = pack(str(SUITE), tmp_path / "ruby-bench.tar.gz").read_bytes()
    sha = hashlib.sha256(packed).hexdigest()
    path = f"/ruby-bench/{run_id}"
    with orch.client(role="runner") as runner:
        denied = runner.put(path, params={"sha256": sha}, content=packed)
        assert denied.status_code == 403, denied.text
        assert "admin token" in denied.json()["error"]
        assert runner.get(path).status_code == 404  # nothing was stored
    with orch.client(token="not-a-token") as stranger:
        assert stranger.put(path, params={"sha256": sha}, content=packed).status_code == 401
        assert stranger.get(path).status_code == 401
    with orch.client() as admin:
        cases = [
            ({}, packed, 422, "sha256: Field required"),
            ({"sha256": "ABC"}, packed, 422, "sha256: String should match pattern"),
            ({"sha256": "0" * 64}, packed, 400, f"sha256: the body's sha256 is {sha}, not"),
            ({"sha256": hashlib.sha256(b"hi").hexdigest()}, b"hi", 400, "body: not a .tar.gz"),
            ({"sha256": hashlib.sha256(b"").hexdigest()}, b"", 400, "body: not a .tar.gz"),
        ]
        for params, content, status, message in cases:
            answer = admin.put(path, params=params, content=content)
            assert answer.status_code == status, (params, answer.text)
            assert message in answer.json()["error"], (params, answer.text)
        unknown = admin.put("/ruby-bench/999999", params={"sha256": sha}, content=packed)
        assert unknown.status_code == 404 and "run 999999 not found" in unknown.text
        assert admin.get(path).status_code == 404  # no bad upload was recorded


def test_a_suite_over_the_bound_is_refused_with_413(
    sqlite_url: str, orchestrator_factory: OrchestratorFactory
) -> None:
    orch = orchestrator_factory(sqlite_url, server="in_process")
    run_id = _run(orch)
    big = b"\x1f\x8b" + bytes(MAX_SUITE_BYTES - 1)
    sha = hashlib.sha256(big).hexdigest()
    path = f"/ruby-bench/{run_id}"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the streamed count is the bound
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    with orch.client() as admin:
        declared = admin.put(path, params={"sha256": sha}, content=big)
        assert declared.status_code == 413, declared.text
        assert f"larger than {MAX_SUITE_BYTES} bytes" in declared.json()["error"]
        streamed = admin.put(path, params={"sha256": sha}, content=chunks())
        assert streamed.status_code == 413, streamed.text
        assert "body: the packed suite is larger" in streamed.json()["error"]
        assert admin.get(path).status_code == 404


def test_the_master_ships_once_per_run_and_a_resume_keeps_the_sha256(
    sqlite_url: str, tmp_path: Path, orchestrator_factory: OrchestratorFactory
) -> None:
    """master/providers/suite.py `ship` through the real client: a resumed run stores the
    suite it packed first again (VMs already booted hold that sha256), never a new pack."""
    orch = orchestrator_factory(sqlite_url, server="in_process")
    run_id = _run(orch)
    dest = tmp_path / "runs" / str(run_id) / "azure" / "ruby-bench.tar.gz"
    with OrchestratorClient(orch.url, orch.admin_token) as api:
        first = ship(str(SUITE), dest, api, run_id)
        time.sleep(1.1)  # a new pack would now differ (gzip records the time)
        assert pack(str(SUITE), tmp_path / "fresh.tar.gz").read_bytes() != dest.read_bytes()
        again = ship(str(SUITE), dest, api, run_id)
        with pytest.raises(ProviderError, match=r"cannot ship --ruby-bench .* 404: run 999999"):
            ship(str(SUITE), dest, api, 999999)
    assert first == again == hashlib.sha256(dest.read_bytes()).hexdigest()
    with orch.client(role="runner") as runner:
        assert runner.get(f"/ruby-bench/{run_id}").content == dest.read_bytes()

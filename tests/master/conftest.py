"""Harness for end-to-end `cloudbench run` tests: real master, orchestrator and runners."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_SUITE = ROOT / "tests" / "fake_ruby_bench"

needs_ruby = pytest.mark.usefixtures("ruby")


def fake_config(
    types: list[str], tasks: int, names: list[str], instances: int = 1
) -> dict[str, Any]:
    return {
        "ruby_version": "system",
        "per_instance_type": {"tasks": tasks, "instances": instances},
        "local": [{"instance_type": f"local-{t}", "alias": t} for t in types],
        "benchmarks": {
            "names": names,
            "executables": ["interp"],
            "warmup_iterations": 0,
            "bench_iterations": 1,
        },
    }


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home, self.state, self.results = tmp / "home", tmp / "state", tmp / "results"
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen: set[tuple[int, float]] = set()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBENCH_")}
        # The fake suite's `sleepy` reads FAKE_BENCH_SLEEP; benchmarks get an allowlist.
        return {
            **env,
            "CLOUDBENCH_HOME": str(self.home),
            "CLOUDBENCH_PASS_ENV": "FAKE_BENCH_SLEEP",
            **extra,
        }

    def config(self, body: dict[str, Any] | str, name: str = "run.json") -> Path:
        path = self.tmp / name
        path.write_text(body if isinstance(body, str) else json.dumps(body))
        return path

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cloudbench", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.tmp,
        )

    def start(
        self,
        config: Path,
        *args: str,
        timeout: float = 30,
        executor: str = "host",
        environment: Mapping[str, str] | None = None,
        **env: str,
    ) -> None:
        """`cloudbench run CONFIG ARGS…` in the background; environment (a whole mapping,
        e.g. FakeTerraform.env()) and env (single variables) are added to self.env()."""
        command = [
            sys.executable,
            "-m",
            "cloudbench",
            "run",
            str(config),
            "--json",
            "--ruby-bench",
            str(FAKE_SUITE),
            "--executor",
            executor,
            "--slots",
            "1",
            "--state-dir",
            str(self.state),
            "--results-dir",
            str(self.results),
            "--heartbeat-timeout",
            str(timeout),
            *args,
        ]
        out, err = (self.tmp / "stdout").open("wb"), (self.tmp / "stderr").open("wb")
        self.proc = subprocess.Popen(
            command,
            env=self.env(**{**(environment or {}), **env}),
            stdout=out,
            stderr=err,
            cwd=self.tmp,
            preexec_fn=_default_sigint,
        )
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        # Every process the master ever recorded, to prove none outlives it.
        while not self._stop.is_set():
            for session in self.sessions():
                for p in session["processes"]:
                    self.seen.add((p["pid"], p["create_time"]))
            time.sleep(0.1)

    def wait(self, timeout: float = 120) -> tuple[int, str, str]:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:  # say what the master was doing
            raise AssertionError(
                f"master still running after {timeout} s; {self.output()}"
            ) from exc
        self._stop.set()
        return code, (self.tmp / "stdout").read_text(), (self.tmp / "stderr").read_text()

    def sessions(self) -> list[dict[str, Any]]:
        found = []
        for path in (self.home / "sessions").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text()))
        return found

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            assert self.proc is None or self.proc.poll() is None, self.output()
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting; {self.output()}")

    def output(self) -> str:
        return (self.tmp / "stderr").read_text()[-3000:]

    def api(self) -> httpx.Client:
        session = self.wait_for(lambda: next(iter(self.sessions()), None))
        tokens = json.loads((self.state / "tokens.json").read_text())
        auth = {"Authorization": f"Bearer {tokens['admin_token']}"}
        return httpx.Client(base_url=session["orchestrator_url"], timeout=10, headers=auth)

    def tasks(self, run_id: int) -> list[dict[str, Any]]:
        try:
            with self.api() as http:
                return list(http.get(f"/runs/{run_id}/tasks").json()["tasks"])
        except httpx.HTTPError:
            return []

    def run_id(self) -> int:
        return int(self.wait_for(lambda: next((s["run_id"] for s in self.sessions()), None)))

    def processes(self, role: str) -> list[dict[str, Any]]:
        return [p for s in self.sessions() for p in s["processes"] if p["role"] == role]

    def assert_nothing_left(self) -> None:
        alive = []
        for pid, created in self.seen:
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - created) < 0.05 and proc.status() != "zombie":
                    alive.append(proc.cmdline())
            except psutil.Error:
                pass
        assert not alive, alive
        assert self.seen, "the master recorded no processes"
        root = str(self.state.resolve())
        strays = [
            p.info
            for p in psutil.process_iter(["pid", "cwd", "cmdline"])
            if (p.info["cwd"] or "").startswith(root)
        ]
        assert not strays, strays
        assert not self.sessions(), "session record left behind"

    def close(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # Only this test's run: other sessions' containers on this machine are not ours.
        run_ids = {s["run_id"] for s in self.sessions() if s["run_id"]}
        for run_id in run_ids:
            self.cli("nuke", "--yes", "--run-id", str(run_id))


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def last_json(stdout: str) -> dict[str, Any]:
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def _default_sigint() -> None:
    """The master as started from a terminal: Ctrl-C delivered. A test run started in the
    background by a non-interactive shell ignores SIGINT, children inherit that, and Python
    then installs no KeyboardInterrupt handler (the SIGINT test waited out its 60 s)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

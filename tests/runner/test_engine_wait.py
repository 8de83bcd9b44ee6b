"""A runner waits for its container engine (issue 23): a daemon still starting at boot,
or a Docker API socket slow under load, is waited for up to a deadline, saying so.

The engine here is a stand-in on a unix socket that holds every request until it is
"up" and then answers the two calls the Docker SDK makes to check an engine (GET
/version, GET /_ping): a real busy podman socket cannot be made busy on demand. The
runner side is real: `choose` and the SDK's HTTP over the socket.
"""

from __future__ import annotations

import json
import logging
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from cloudbench.runner.executors import StartupError, choose
from cloudbench.runner.ruby_bench import RubyBenchSource


class _LateEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, up_after: float) -> None:
        self.up_at = time.monotonic() + up_after
        super().__init__(str(path), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out closed its end: a broken pipe here is expected


class _Handler(BaseHTTPRequestHandler):
    server: _LateEngine

    def do_GET(self) -> None:
        time.sleep(max(0.0, self.server.up_at - time.monotonic()))  # "busy"
        body = b"OK" if "_ping" in self.path else json.dumps({"ApiVersion": "1.41"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def late_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_LateEngine]:
    path = tmp_path / "engine.sock"
    server = _LateEngine(path, up_after=8.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    yield server
    server.shutdown()
    server.server_close()


def test_docker_executor_waits_for_an_engine_that_answers_late(
    late_engine: _LateEngine,
    fake_source: RubyBenchSource,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="cloudbench.runner.executors")
    started = time.monotonic()
    executor = choose("docker", fake_source, tmp_path, engine_wait=60)
    try:
        assert executor.name == "docker"
    finally:
        executor.close()
    done = time.monotonic()
    # Chosen only once the engine answered (its clock started in the fixture, before
    # `started`), and well before the 60 s deadline.
    assert done >= late_engine.up_at and done - started < 40
    waiting = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert waiting and "waiting for the container engine at unix://" in waiting[0], waiting


def test_auto_waits_too_and_picks_containers(
    late_engine: _LateEngine, fake_source: RubyBenchSource, tmp_path: Path
) -> None:
    executor = choose("auto", fake_source, tmp_path, engine_wait=60)
    try:
        assert callable(executor.provision)  # an AutoExecutor that decided "engine answers"
        assert executor._engine is True  # type: ignore[attr-defined]
    finally:
        executor.close()


def test_gives_up_at_the_deadline_naming_the_wait(
    tmp_path: Path, fake_source: RubyBenchSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "engine.sock"
    server = _LateEngine(path, up_after=3600)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    started = time.monotonic()
    try:
        with pytest.raises(
            StartupError,
            match=r"no container engine answers at unix://.*"
            r"\(waited 6s\)",
        ):
            choose("docker", fake_source, tmp_path, engine_wait=6)
    finally:
        server.shutdown()
        server.server_close()
    assert time.monotonic() - started < 6 + 15

from __future__ import annotations

import shutil
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cloudbench.runner.packaging import (
    Uploader,
    UploadError,
    build_error_tarball,
    build_result_tarball,
)


def _members(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        return set(tar.getnames())


def test_result_tarball_from_real_outputs(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for ext in ("json", "csv", "txt"):
        shutil.copy(fixtures_dir / f"output_001.{ext}", out / f"output.{ext}")
    tarball = build_result_tarball(
        tmp_path / "result.tar.gz", fixtures_dir / "output.txt", out, {"task_id": 7}
    )
    assert _members(tarball) == {
        "output.txt",
        "output.json",
        "output.csv",
        "output_table.txt",
        "metadata.json",
    }
    with tarfile.open(tarball) as tar:
        log = tar.extractfile("output.txt")
        assert log is not None and b'Running benchmark "fib" (2/6)' in log.read()
        meta = tar.extractfile("metadata.json")
        assert meta is not None and b'"task_id": 7' in meta.read()


def test_error_tarball_holds_what_exists(tmp_path: Path) -> None:
    (tmp_path / "output.txt").write_text("partial output\n")
    files = {"output.txt": tmp_path / "output.txt", "runner.log": tmp_path / "missing.log"}
    tarball = build_error_tarball(tmp_path / "error.tar.gz", "boom", files)
    assert _members(tarball) == {"error.txt", "output.txt"}


class _Store:
    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.headers: list[dict[str, str]] = []
        self.script: list[int] = []  # statuses to answer before accepting


@pytest.fixture
def store() -> Iterator[tuple[_Store, str]]:
    state = _Store()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            state.headers.append(dict(self.headers))
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.script.pop(0) if state.script else 200
            if self.path.startswith("/expired"):
                status = 403
            if status == 200:
                state.bodies[self.path] = body
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_upload_streams_with_length_and_retries(store: tuple[_Store, str], tmp_path: Path) -> None:
    state, base = store
    payload = tmp_path / "result.tar.gz"
    payload.write_bytes(b"x" * (3 * 1024 * 1024 + 5))  # several chunks
    state.script = [503]  # one transient failure, then accepted
    uploader = Uploader(give_up_after=10)
    uploader.upload(payload, f"{base}/ok")
    assert state.bodies["/ok"] == payload.read_bytes()
    assert all("chunked" not in h.get("Transfer-Encoding", "") for h in state.headers)
    assert len(state.headers) == 2


def test_upload_refreshes_expired_url(store: tuple[_Store, str], tmp_path: Path) -> None:
    state, base = store
    payload = tmp_path / "error.tar.gz"
    payload.write_bytes(b"data")
    calls = []

    def refresh() -> str:
        calls.append(1)
        return f"{base}/fresh"

    Uploader(give_up_after=5).upload(payload, f"{base}/expired", refresh)
    assert calls == [1]
    assert state.bodies["/fresh"] == b"data"
    with pytest.raises(UploadError):
        Uploader(give_up_after=5).upload(payload, f"{base}/expired")


def test_upload_gives_up_when_unreachable(tmp_path: Path) -> None:
    payload = tmp_path / "result.tar.gz"
    payload.write_bytes(b"data")
    with pytest.raises(UploadError):
        Uploader(give_up_after=1).upload(payload, "http://127.0.0.1:9/never")

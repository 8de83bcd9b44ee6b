"""The shared lower layer: CPU splitting, duration text, the HTTP client base."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cloudbench.platform.cpus import split_cpus
from cloudbench.platform.http import ApiClient, ApiError, Transient
from cloudbench.platform.timefmt import duration


def test_split_cpus_is_contiguous_disjoint_and_covers_all() -> None:
    assert split_cpus([0, 1, 2, 3, 4], 2) == [(0, 1, 2), (3, 4)]
    assert split_cpus([4, 5, 6], 3) == [(4,), (5,), (6,)]
    with pytest.raises(ValueError, match="cannot split 2 CPU"):
        split_cpus([0, 1], 3)


def test_duration_in_both_styles() -> None:
    # The master's progress line (compact) and the dashboard's (spaced, to the second).
    assert [duration(s) for s in (None, 5, 125, 3725, -4)] == ["-", "5s", "2m05s", "1h02m", "0s"]
    spaced = [duration(s, missing="never", sep=" ", precise=True) for s in (None, 125, 3725)]
    assert spaced == ["never", "2m 05s", "1h 02m 05s"]


class _Script(BaseHTTPRequestHandler):
    answers: list[tuple[int, bytes]] = []
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        status, body = self.answers.pop(0) if self.answers else (200, b'{"ok": true}')
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Script.answers, _Script.seen = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Script)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_5xx_is_retried_and_the_token_goes_in_the_header(server: str) -> None:
    _Script.answers = [(503, b"<html>starting</html>"), (500, b'{"error": "db blip"}')]
    with ApiClient(server, "s3cret", timeout=5) as client:
        response = client.send_retrying("GET", "/x", give_up_after=10, max_backoff=0.05)
    assert response.json() == {"ok": True}
    assert _Script.seen == ["Bearer s3cret"] * 3


def test_4xx_reads_the_error_envelope_and_is_not_retried(server: str) -> None:
    _Script.answers = [(404, json.dumps({"error": "run 9 not found"}).encode())]
    with ApiClient(server, "t", timeout=5) as client, pytest.raises(ApiError) as err:
        client.send_retrying("GET", "/runs/9", give_up_after=10, max_backoff=0.05)
    assert (err.value.status, err.value.detail) == (404, "run 9 not found")
    assert len(_Script.seen) == 1


def test_an_interrupt_ends_the_retrying(server: str) -> None:
    _Script.answers = [(503, b"down")] * 1000
    interrupt = threading.Event()
    threading.Timer(0.3, interrupt.set).start()
    started = time.monotonic()
    with ApiClient(server, "t", timeout=5) as client, pytest.raises(Transient):
        client.send_retrying(
            "GET", "/x", give_up_after=60, max_backoff=5, min_backoff=1, interrupt=interrupt
        )
    assert time.monotonic() - started < 3


def test_extraction_refuses_a_python_without_tarfile_filters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python < 3.11.4 has no tarfile.data_filter (simulated by removing it): refuse, clearly."""
    import tarfile

    from cloudbench.platform.tarsafe import UnsafeArchiveError, safe_extract

    member = tmp_path / "a.txt"
    member.write_text("x")
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(member, arcname="a.txt")
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(UnsafeArchiveError, match=r"Python >= 3\.11\.4"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "a.txt").exists()


def test_a_domain_name_reaches_the_meta_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLOUDBENCH_AWS_DOMAIN_NAME becomes the meta stack's domain_name (Caddy with ACME);
    unset, the stack gets none and the master pins the self-signed certificate."""
    from cloudbench.platform.stacks import AwsSettings

    monkeypatch.setenv("CLOUDBENCH_AWS_DOMAIN_NAME", "bench.example.org")
    assert AwsSettings().meta_variables()["domain_name"] == "bench.example.org"
    monkeypatch.delenv("CLOUDBENCH_AWS_DOMAIN_NAME")
    assert "domain_name" not in AwsSettings().meta_variables()

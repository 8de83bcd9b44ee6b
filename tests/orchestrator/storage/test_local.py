"""LocalStorage through a real HTTP server: signed PUT/GET, tampering, traversal, caps."""

from __future__ import annotations

import http.client
import itertools
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from fastapi import FastAPI

from cloudbench.orchestrator.api.storage import storage_router
from cloudbench.orchestrator.storage.base import InvalidKeyError, validate_key
from cloudbench.orchestrator.storage.local import LocalStorage, SignatureError
from tests.orchestrator.storage.server import serve

CAP = 2 << 20
KEY = "results/7/task_3_1_result.tar.gz"
_numbers = itertools.count(100)


def fresh_key() -> str:
    # Signed PUTs are create-only: a test that stores something needs a key of its own.
    return f"results/7/task_{next(_numbers)}_1_result.tar.gz"


class Server:
    def __init__(self, base: str, storage: LocalStorage) -> None:
        self.base = base
        self.storage = storage
        self.client = httpx.Client(timeout=10)

    def raw(self, method: str, path: str) -> tuple[int, bytes]:
        """Send path byte-for-byte (httpx would normalise dot segments and encodings)."""
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            conn.request(method, path, body=b"x" if method == "PUT" else None)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    app = FastAPI()
    app.include_router(storage_router())
    root = tmp_path_factory.mktemp("storage")
    with serve(app) as base:
        app.state.storage = LocalStorage(root / "objects", base, b"test-secret", CAP)
        srv = Server(base, app.state.storage)
        yield srv
        srv.client.close()


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _leftovers(storage: LocalStorage) -> list[str]:
    return sorted(p.name for p in storage.root.rglob("*") if p.name.endswith(".part"))


def test_round_trip(server: Server) -> None:
    data = os.urandom(300_000)
    put = server.client.put(server.storage.presign_put(KEY, 60), content=data)
    assert put.status_code == 200, put.text
    assert put.json() == {"key": KEY, "size": len(data)}
    assert server.storage.exists(KEY)
    assert (server.storage.root / KEY).read_bytes() == data
    get = server.client.get(server.storage.presign_get(KEY, 60))
    assert get.status_code == 200
    assert get.content == data
    assert get.headers["content-type"] == "application/gzip"
    with server.storage.open_read(KEY) as handle:
        assert handle.read() == data
    assert b"".join(server.storage.iter_bytes(KEY, 4096)) == data


def test_streamed_chunked_upload_is_stored_once(server: Server) -> None:
    key = fresh_key()
    data = os.urandom(CAP - 10)

    def chunks(payload: bytes) -> Iterator[bytes]:
        for start in range(0, len(payload), 65_536):
            yield payload[start : start + 65_536]

    put = server.client.put(server.storage.presign_put(key, 60), content=chunks(data))
    assert put.status_code == 200, put.text
    # The same URL (a stale runner still holding it) cannot replace what is stored.
    again = server.client.put(server.storage.presign_put(key, 60), content=chunks(b"evil" * 9))
    assert again.status_code == 412, again.text
    assert "already stored" in again.json()["error"]
    assert (server.storage.root / key).read_bytes() == data
    assert _leftovers(server.storage) == []


def test_racing_puts_store_exactly_one_body(server: Server) -> None:
    key = fresh_key()
    url = server.storage.presign_put(key, 60)
    bodies = [bytes([n]) * 200_000 for n in range(8)]

    def put(body: bytes) -> int:
        with httpx.Client(timeout=30) as client:
            return client.put(url, content=body).status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        statuses = list(pool.map(put, bodies))
    assert sorted(statuses) == [200] + [412] * (len(bodies) - 1)
    assert (server.storage.root / key).read_bytes() == bodies[statuses.index(200)]
    assert _leftovers(server.storage) == []


def test_missing_object_is_404(server: Server) -> None:
    response = server.client.get(server.storage.presign_get("results/7/nope.tar.gz", 60))
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


@pytest.mark.parametrize(
    "change",
    [
        {"sig": "0" * 64},
        {"expires": str(int(time.time()) + 10_000)},
        {"method": "GET"},  # a PUT URL relabelled as GET
        {"sig": ""},
    ],
)
def test_tampered_url_is_403(server: Server, change: dict[str, str]) -> None:
    key = fresh_key()
    url = _with_query(server.storage.presign_put(key, 60), **change)
    response = server.client.request(change.get("method", "PUT"), url)
    assert response.status_code == 403
    assert "error" in response.json()
    assert not server.storage.exists(key)


def test_signature_is_bound_to_key(server: Server) -> None:
    url = server.storage.presign_put(KEY, 60).replace("task_3_", "task_9_")
    assert server.client.put(url, content=b"x").status_code == 403
    assert not server.storage.exists("results/7/task_9_1_result.tar.gz")


def test_expired_url_is_403(server: Server) -> None:
    url = server.storage.presign("PUT", KEY, 30, now=time.time() - 60)
    response = server.client.put(url, content=b"late")
    assert response.status_code == 403
    assert "expired" in response.json()["error"]


def test_wrong_method_is_403(server: Server) -> None:
    key = fresh_key()
    assert server.client.put(server.storage.presign_put(key, 60), content=b"original").is_success
    get_url = server.storage.presign_get(key, 60)
    put_url = server.storage.presign_put(key, 60)
    overwrite = server.client.put(get_url, content=b"evil")
    assert overwrite.status_code == 403
    assert "signed for GET" in overwrite.json()["error"]
    assert server.client.get(put_url).status_code == 403
    assert (server.storage.root / key).read_bytes() == b"original"


@pytest.mark.parametrize(
    "path",
    [
        "/storage/../outside.txt",
        "/storage/results/../../outside.txt",
        "/storage/results/%2e%2e/%2e%2e/outside.txt",
        "/storage/results%2f7%2fx.tar.gz",
        "/storage/results%2F7%2Fx.tar.gz",
        "/storage/results/%252e%252e/outside.txt",
        "/storage/results%5c..%5coutside.txt",
        "/storage//etc/passwd",
        "/storage/results/7/x%00.tar.gz",
        "/storage/results//7/x.tar.gz",
        "/storage/",
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_bad_keys_are_400(server: Server, path: str, method: str) -> None:
    status, body = server.raw(method, path + "?method=PUT&expires=9999999999&sig=00")
    assert status == 400, body
    assert b'"error"' in body
    assert not (server.storage.root.parent / "outside.txt").exists()


def test_symlink_planted_in_root_is_not_followed(server: Server, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (server.storage.root / "results" / "link").parent.mkdir(parents=True, exist_ok=True)
    (server.storage.root / "results" / "link").symlink_to(tmp_path)
    with pytest.raises(InvalidKeyError):
        server.storage.path_for("results/link/secret.txt")
    url = server.storage.presign_get("results/link/secret.txt", 60)
    assert server.client.get(url).status_code == 400


def test_oversize_with_content_length_is_413(server: Server) -> None:
    key = fresh_key()
    response = server.client.put(server.storage.presign_put(key, 60), content=b"x" * (CAP + 1))
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]
    assert not server.storage.exists(key)


def test_oversize_chunked_is_413_and_stores_nothing(server: Server) -> None:
    key = fresh_key()

    def chunks() -> Iterator[bytes]:
        for _ in range(CAP // 65_536 + 2):
            yield b"y" * 65_536

    response = server.client.put(server.storage.presign_put(key, 60), content=chunks())
    assert response.status_code == 413
    assert not server.storage.exists(key)
    assert _leftovers(server.storage) == []


def test_router_without_local_storage_is_404(tmp_path: Path) -> None:
    app = FastAPI()
    app.include_router(storage_router(lambda request: None))
    with serve(app) as base, httpx.Client() as client:
        response = client.get(f"{base}/storage/{KEY}?method=GET&expires=1&sig=0")
    assert response.status_code == 404
    assert response.json() == {"error": "local storage is not enabled"}


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "a/../b", "..", "a//b", "a/", "./a", "a\\b", "a\x00b", "a%2fb", "a b", "-x/y"],
)
def test_validate_key_rejects(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)


def test_validate_key_accepts_our_keys() -> None:
    assert validate_key(KEY) == KEY
    assert validate_key("results/1/results.tar.gz") == "results/1/results.tar.gz"


def test_verify_unit(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, "http://x", b"k", 10)
    query = parse_qs(urlsplit(storage.presign("GET", KEY, 5, now=1000)).query)
    args = {"signed_method": "GET", "expires": query["expires"][0], "sig": query["sig"][0]}
    storage.verify("GET", KEY, now=1004, **args)
    with pytest.raises(SignatureError, match="expired"):
        storage.verify("GET", KEY, now=1006, **args)
    with pytest.raises(SignatureError, match="invalid signature"):
        LocalStorage(tmp_path, "http://x", b"other", 10).verify("GET", KEY, now=1000, **args)

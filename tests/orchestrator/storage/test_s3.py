"""S3Storage against moto's standalone server: a real HTTP S3 endpoint on loopback."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from cloudbench.orchestrator.archive import ArchiveTask, build_archive, safe_extract
from cloudbench.orchestrator.storage.base import InvalidKeyError, archive_key, result_key
from cloudbench.orchestrator.storage.factory import storage_from_url
from cloudbench.orchestrator.storage.s3 import S3Storage
from cloudbench.protocol import TaskStatus
from cloudbench.runner.packaging import Uploader, UploadError
from tests.pg import free_port

BUCKET = "cloudbench-test"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoints() -> Iterator[tuple[str, str]]:
    """Two moto servers sharing one in-process backend: 'internal' and 'public'."""
    with pytest.MonkeyPatch.context() as mp:
        # Only the normal AWS chain is used; point it at throwaway env credentials.
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.delenv("AWS_SESSION_TOKEN", raising=False)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=free_port()) for _ in "ab"]
        for server in servers:
            server.start()
        urls = [f"http://127.0.0.1:{server._port}" for server in servers]
        boto3.client("s3", region_name=REGION, endpoint_url=urls[0]).create_bucket(Bucket=BUCKET)
        try:
            yield urls[0], urls[1]
        finally:
            for server in servers:
                server.stop()


@pytest.fixture
def storage(endpoints: tuple[str, str]) -> S3Storage:
    return S3Storage(BUCKET, "bench/prod", REGION, endpoint_url=endpoints[0])


def test_presigned_put_get_head_and_reads(storage: S3Storage, endpoints: tuple[str, str]) -> None:
    key = result_key(5, 11, lease=1)
    data = os.urandom(200_000)
    assert not storage.exists(key)
    url = storage.presign_put(key, 600)
    assert url.startswith(f"{endpoints[0]}/{BUCKET}/bench/prod/results/5/")
    assert httpx.put(url, content=data).status_code == 200
    assert storage.exists(key)
    get = httpx.get(storage.presign_get(key, 600))
    assert get.status_code == 200
    assert get.content == data
    with storage.open_read(key) as handle:
        assert handle.read(10) == data[:10]
        assert handle.read() == data[10:]
    assert b"".join(storage.iter_bytes(key, 65_536)) == data
    listed = boto3.client("s3", region_name=REGION, endpoint_url=endpoints[0]).list_objects_v2(
        Bucket=BUCKET, Prefix="bench/prod/"
    )
    assert [o["Key"] for o in listed["Contents"]] == [f"bench/prod/{key}"]


def test_presigned_put_is_a_conditional_write(storage: S3Storage) -> None:
    key = result_key(5, 12, lease=3)
    url = storage.presign_put(key, 600)
    # Signed: real S3 refuses the URL without the header, so no holder can drop it.
    signed = parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    assert "if-none-match" in signed
    first = httpx.put(url, content=b"first", headers={"If-None-Match": "*"})
    assert first.status_code == 200, first.text
    again = httpx.put(url, content=b"stale", headers={"If-None-Match": "*"})
    assert again.status_code == 412, again.text
    with storage.open_read(key) as handle:
        assert handle.read() == b"first"


def test_runner_uploader_cannot_replace_a_stored_result(storage: S3Storage, tmp_path: Path) -> None:
    key = result_key(5, 13, lease=1)
    url = storage.presign_put(key, 600)
    (tmp_path / "a.tar.gz").write_bytes(b"completed result")
    (tmp_path / "b.tar.gz").write_bytes(b"stale runner's result")
    uploader = Uploader(give_up_after=5)
    try:
        uploader.upload(tmp_path / "a.tar.gz", url)
        with pytest.raises(UploadError, match="already stored"):
            uploader.upload(tmp_path / "b.tar.gz", url)
    finally:
        uploader.close()
    with storage.open_read(key) as handle:
        assert handle.read() == b"completed result"


def test_missing_object(storage: S3Storage) -> None:
    key = "results/5/task_404_result.tar.gz"
    assert not storage.exists(key)
    with pytest.raises(FileNotFoundError), storage.open_read(key):
        pass
    with pytest.raises(FileNotFoundError):
        list(storage.iter_bytes(key))


def test_invalid_key_refused(storage: S3Storage) -> None:
    with pytest.raises(InvalidKeyError):
        storage.presign_put("results/../x", 60)


def test_public_endpoint_is_used_for_signing_only(endpoints: tuple[str, str]) -> None:
    internal, public = endpoints
    storage = S3Storage(BUCKET, "", REGION, endpoint_url=internal, public_endpoint_url=public)
    key = result_key(6, 1, lease=1)
    url = storage.presign_put(key, 600)
    assert url.startswith(f"{public}/{BUCKET}/results/6/")
    assert httpx.put(url, content=b"via public").status_code == 200
    # The orchestrator's own calls go to the internal endpoint.
    assert storage.exists(key)
    with storage.open_read(key) as handle:
        assert handle.read() == b"via public"
    assert storage.presign_get(key, 60).startswith(public)


def test_put_file_multipart_archive(storage: S3Storage, tmp_path: Path) -> None:
    path = tmp_path / "big.tar.gz"
    path.write_bytes(os.urandom(17 << 20))  # above the 16 MiB multipart threshold
    storage.put_file(archive_key(9), path)
    digest = hashlib.sha256()
    for chunk in storage.iter_bytes(archive_key(9)):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_archive_end_to_end_over_s3(storage: S3Storage, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("output.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    assert httpx.put(
        storage.presign_put(result_key(8, 1, lease=1), 60), content=buffer.getvalue()
    ).is_success
    key = result_key(8, 1, lease=1)
    task = ArchiveTask(1, "aws", "c7g.large", "arm", 1, TaskStatus.completed, result_key=key)
    result = build_archive(
        storage=storage, run_id=8, tasks=[task], removed_tasks=0, workdir=tmp_path / "w"
    )
    assert result.key == archive_key(8)
    download = httpx.get(storage.presign_get(result.key, 60))
    names = safe_extract(io.BytesIO(download.content), tmp_path / "out")
    assert sorted(names) == ["arm-1/output.json", "manifest.json"]


def test_factory_builds_s3(endpoints: tuple[str, str]) -> None:
    storage = storage_from_url(
        f"s3://{BUCKET}/some/prefix/",
        public_url="http://unused",
        secret=b"",
        endpoint_url=endpoints[0],
        region=REGION,
    )
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == (BUCKET, "some/prefix/")


def test_unreachable_s3_is_storage_unavailable(endpoints: tuple[str, str]) -> None:
    """A 503 for complete (retryable by runners), not a 500. Slow: boto retries 5 times."""
    from cloudbench.orchestrator.storage.base import StorageUnavailable

    dead = S3Storage(BUCKET, region=REGION, endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageUnavailable, match="S3 unreachable"):
        dead.exists("results/1/task_1_result.tar.gz")

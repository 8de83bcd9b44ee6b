"""CLOUDBENCH_STORAGE_URL parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudbench.orchestrator.storage.factory import storage_from_url
from cloudbench.orchestrator.storage.local import LocalStorage


def test_file_url_builds_local_storage(tmp_path: Path) -> None:
    storage = storage_from_url(
        f"file://{tmp_path}/objects", public_url="http://o:8000/", secret=b"s", max_bytes=99
    )
    assert isinstance(storage, LocalStorage)
    assert (storage.root, storage.public_url, storage.max_bytes) == (
        (tmp_path / "objects").resolve(),
        "http://o:8000",
        99,
    )
    assert storage.presign_get("results/1/results.tar.gz", 60).startswith(
        "http://o:8000/storage/results/1/results.tar.gz?method=GET&expires="
    )


@pytest.mark.parametrize(
    "url",
    ["/plain/path", "file://relative/path", "s3://", "gs://bucket/x", "http://x", "file:///a?b=1"],
)
def test_bad_urls_name_the_setting(url: str) -> None:
    with pytest.raises(ValueError, match="CLOUDBENCH_STORAGE_URL"):
        storage_from_url(url, public_url="http://o", secret=b"s")


def test_local_storage_needs_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secret"):
        storage_from_url(f"file://{tmp_path}", public_url="http://o", secret=b"")

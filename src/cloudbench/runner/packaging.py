"""Result/error tarballs and their streamed upload to presigned URLs."""

from __future__ import annotations

import json
import logging
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from cloudbench.platform.tls import also_trust

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# ruby-bench's own table (its output.txt) is kept under another name: output.txt is the log.
TABLE_NAME = "output_table.txt"


class UploadError(Exception):
    pass


class _RetryableUpload(Exception):
    pass


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def build_result_tarball(
    dest: Path, log_path: Path, out_dir: Path, metadata: dict[str, Any]
) -> Path:
    """result.tar.gz: output.txt (stdout+stderr), output.json, output.csv, metadata.json."""
    meta_path = dest.parent / "metadata.json"
    write_json(meta_path, metadata)
    members = {
        "output.txt": log_path,
        "output.json": out_dir / "output.json",
        "output.csv": out_dir / "output.csv",
        TABLE_NAME: out_dir / "output.txt",
        "metadata.json": meta_path,
    }
    with tarfile.open(dest, "w:gz") as tar:
        for arcname, source in members.items():
            if source.is_file():
                tar.add(source, arcname=arcname, recursive=False)
            elif arcname != TABLE_NAME:
                log.warning("result file %s missing from %s", arcname, source)
    return dest


def build_error_tarball(
    dest: Path, error_text: str, files: dict[str, Path], metadata: dict[str, Any] | None = None
) -> Path:
    """error.tar.gz: error.txt plus whatever exists of the output so far and the runner log."""
    error_path = dest.parent / "error.txt"
    error_path.write_text(error_text if error_text.endswith("\n") else error_text + "\n")
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(error_path, arcname="error.txt", recursive=False)
        if metadata is not None:
            meta_path = dest.parent / "metadata.json"
            write_json(meta_path, metadata)
            tar.add(meta_path, arcname="metadata.json", recursive=False)
        for arcname, source in files.items():
            if source.is_file():
                tar.add(source, arcname=arcname, recursive=False)
    return dest


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


class Uploader:
    """PUTs a file to a presigned URL, streaming it from disk.

    Transport errors and 5xx are retried with backoff; a 403 (expired or rejected
    signature) asks `refresh` for a fresh URL, a bounded number of times. Every URL is
    create-only (``If-None-Match: *``, signed on S3): a 412 after an attempt whose answer
    was lost means that attempt stored the file (the key is this claim's alone); a 412
    on the first try is refused.
    """

    def __init__(
        self, give_up_after: float = 600.0, timeout: float = 300.0, ca_file: Path | None = None
    ) -> None:
        self.give_up_after = give_up_after
        # Presigned URLs: S3 (system CAs) or the orchestrator itself (its certificate).
        verify = also_trust(ca_file.read_text() if ca_file else None)
        self._http = httpx.Client(timeout=timeout, verify=verify)

    def close(self) -> None:
        self._http.close()

    def upload(
        self, path: Path, url: str, refresh: Callable[[], str] | None = None, refreshes: int = 3
    ) -> None:
        unanswered: list[bool] = []  # per call: slots share one Uploader across threads
        for attempt in range(refreshes + 1):
            status = self._upload_retrying(path, url, unanswered)
            if status < 400 or (status == 412 and unanswered):
                log.info("uploaded %s (%d bytes)", path.name, path.stat().st_size)
                return
            if status == 403 and refresh is not None and attempt < refreshes:
                log.warning("upload of %s got 403; fetching fresh URLs", path.name)
                url = refresh()
                continue
            if status == 412:
                raise UploadError(f"upload of {path.name} refused: the key is already stored")
            raise UploadError(f"upload of {path.name} refused with HTTP {status}")
        raise UploadError(f"upload of {path.name}: still 403 after {refreshes} fresh URLs")

    def _upload_retrying(self, path: Path, url: str, unanswered: list[bool]) -> int:
        retrying = Retrying(
            retry=retry_if_exception_type((httpx.TransportError, _RetryableUpload)),
            wait=wait_exponential(multiplier=0.5, min=0.5, max=30),
            stop=stop_after_delay(self.give_up_after),
            reraise=True,
        )
        try:
            return retrying(self._put_once, path, url, unanswered)
        except (httpx.TransportError, _RetryableUpload) as exc:
            raise UploadError(f"upload of {path.name} failed: {exc}") from exc

    def _put_once(self, path: Path, url: str, unanswered: list[bool]) -> int:
        # An explicit Content-Length keeps the body un-chunked (S3 presigned PUTs need it);
        # the generator is fresh per attempt so a retry re-reads the file from the start.
        headers = {"Content-Length": str(path.stat().st_size), "If-None-Match": "*"}
        try:
            response = self._http.put(url, content=_chunks(path), headers=headers)
        except httpx.TransportError:
            unanswered.append(True)  # it may have been stored before the answer was lost
            raise
        if response.status_code >= 500:
            unanswered.append(True)
            raise _RetryableUpload(f"HTTP {response.status_code}")
        return response.status_code

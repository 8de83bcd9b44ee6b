"""S3 (and S3-compatible) storage via boto3.

Credentials come from the normal AWS chain only (env, profile, instance role).
``endpoint_url`` is where the orchestrator itself talks to S3; ``public_endpoint_url``
is the address runners and the master will use, so presigned URLs are signed for that
host (the host is part of a SigV4 signature, so it cannot be rewritten afterwards).

IAM: the orchestrator needs s3:PutObject, s3:GetObject and s3:ListBucket (without
ListBucket S3 answers HEAD on a missing object with 403 instead of 404, which
``exists`` reports as an error rather than False).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cloudbench.orchestrator.storage.base import StorageUnavailable, validate_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
# 16 MiB parts x 4 threads keeps the archive upload's memory well under the 200 MB budget.
_TRANSFER = TransferConfig(
    multipart_threshold=16 << 20, multipart_chunksize=16 << 20, max_concurrency=4
)


def _client(region: str | None, endpoint_url: str | None) -> S3Client:
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": 5},
        # Path-style works with every S3-compatible server and with dotted bucket names.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    client: S3Client = boto3.session.Session().client(
        "s3", region_name=region, endpoint_url=endpoint_url, config=config
    )
    return client


def _is_missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING_CODES


class _BodyReader(io.RawIOBase):
    """Adapts botocore's StreamingBody to a real binary file object (readinto)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data: bytes = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class S3Storage:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        region: str | None = None,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3 storage needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = _client(region, endpoint_url)
        self._signer = (
            _client(region, public_endpoint_url)
            if public_endpoint_url and public_endpoint_url != endpoint_url
            else self._client
        )

    def object_key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _presign(self, operation: str, key: str, expires_in: int, **extra: str) -> str:
        url: str = self._signer.generate_presigned_url(
            operation,
            Params={"Bucket": self.bucket, "Key": self.object_key(key), **extra},
            ExpiresIn=expires_in,
        )
        return url

    def presign_put(self, key: str, expires_in: int) -> str:
        # If-None-Match becomes a signed header: the URL only works as a conditional
        # write, so S3 itself refuses (412) to replace an object stored under key.
        return self._presign("put_object", key, expires_in, IfNoneMatch="*")

    def presign_get(self, key: str, expires_in: int) -> str:
        return self._presign("get_object", key, expires_in)

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _is_missing(exc):
                return False
            code = exc.response.get("Error", {}).get("Code", "?")
            raise StorageUnavailable(f"S3 HEAD {self.object_key(key)} failed: {code}") from exc
        except BotoCoreError as exc:  # endpoint unreachable, timeouts
            raise StorageUnavailable(f"S3 unreachable: {exc}") from exc
        return True

    def _get_body(self, key: str) -> Any:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"s3://{self.bucket}/{self.object_key(key)}") from exc
            raise
        return response["Body"]

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        raw = _BodyReader(self._get_body(key))
        with io.BufferedReader(raw, buffer_size=1 << 20) as reader:
            yield reader

    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        body = self._get_body(key)
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def put_file(self, key: str, path: Path) -> None:
        self._client.upload_file(str(path), self.bucket, self.object_key(key), Config=_TRANSFER)
        logger.info("uploaded %s to s3://%s/%s", path, self.bucket, self.object_key(key))

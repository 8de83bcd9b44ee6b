"""The storage seam. Local disk (signed URLs served by the orchestrator) and S3."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol

MAX_KEY_LENGTH = 1024
# Keys are ours (see the helpers below); a narrow alphabet keeps every backend and every
# filesystem happy and leaves no room for encodings that decode into separators.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


class StorageError(Exception):
    """Base class for storage-level errors that map to a client-facing status."""


class StorageUnavailable(StorageError):
    """The backend failed (S3 outage, denied, throttled): retryable, so a 503."""


class ObjectExists(StorageError):
    """A create-only PUT hit a key that is already stored (HTTP 412)."""


class InvalidKeyError(StorageError, ValueError):
    """A key that could escape the storage root or is not one we would ever create."""


def validate_key(key: str) -> str:
    """Return key unchanged if it is a safe relative object key, else raise InvalidKeyError."""
    if not key:
        raise InvalidKeyError("empty key")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"key longer than {MAX_KEY_LENGTH} characters")
    if "\x00" in key:
        raise InvalidKeyError("NUL byte in key")
    if "\\" in key:
        raise InvalidKeyError("backslash in key")
    if "%" in key:
        raise InvalidKeyError("percent-encoded characters in key")
    if key.startswith("/"):
        raise InvalidKeyError("absolute key")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKeyError(f"empty, '.' or '..' segment in key {key!r}")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidKeyError(f"unsupported characters in key segment {segment!r}")
    return key


# Upload keys carry the lease, and every upload is create-only (presign_put): each claim
# writes its own objects exactly once, so a stale runner still holding an old URL can
# neither replace the result a later claim completed with nor its own once stored.
def result_key(run_id: int, task_id: int, *, lease: int) -> str:
    return f"results/{run_id}/task_{task_id}_{lease}_result.tar.gz"


def error_key(run_id: int, task_id: int, *, lease: int) -> str:
    return f"results/{run_id}/task_{task_id}_{lease}_error.tar.gz"


def archive_key(run_id: int) -> str:
    return f"results/{run_id}/results.tar.gz"


class Storage(Protocol):
    def presign_put(self, key: str, expires_in: int) -> str:
        """A create-only URL: a PUT (sent with ``If-None-Match: *``) stores the object
        until it expires, and is refused with 412 once the key holds an object."""

    def presign_get(self, key: str, expires_in: int) -> str:
        """A URL a plain HTTP client can GET the object from until it expires."""

    def exists(self, key: str) -> bool: ...

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A streaming reader; raises FileNotFoundError when the object is missing."""

    def put_file(self, key: str, path: Path) -> None:
        """Store a local file under key without reading it whole into memory."""

    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...

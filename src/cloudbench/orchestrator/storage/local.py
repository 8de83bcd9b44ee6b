"""Local-directory storage; the orchestrator serves PUT/GET on HMAC-signed URLs.

A signed URL is bound to one method, one key and one expiry:
``{public_url}/storage/{key}?method=PUT&expires=<unix>&sig=<hex hmac-sha256>``.
The HTTP side lives in ``cloudbench.orchestrator.api.storage``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from cloudbench.orchestrator.storage.base import (
    InvalidKeyError,
    ObjectExists,
    StorageError,
    validate_key,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1 << 30
SIGNED_METHODS = ("GET", "PUT")


class SignatureError(StorageError):
    """Tampered, expired or wrong-method signed URL (HTTP 403)."""


class TooLargeError(StorageError):
    """Upload larger than the configured cap (HTTP 413)."""


class AtomicWriter:
    """Streams into a temp file next to the target; commit() fsyncs and renames it in.

    Readers therefore never see a half-written object, and a failed upload leaves the
    previous object (if any) untouched. With ``create_only`` the object is linked in
    instead, so a key that already holds an object is never replaced (ObjectExists).
    """

    def __init__(self, final: Path, max_bytes: int | None, *, create_only: bool = False) -> None:
        self.final = final
        self.max_bytes = max_bytes
        self.create_only = create_only
        self.written = 0
        final.parent.mkdir(parents=True, exist_ok=True)
        # Leading dot: the temp name is never a valid key, so it can never be served.
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
        self._tmp = Path(tmp)
        self._file: BinaryIO = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.written += len(chunk)
        if self.max_bytes is not None and self.written > self.max_bytes:
            raise TooLargeError(f"object larger than {self.max_bytes} bytes")
        self._file.write(chunk)

    def copy_from(self, source: BinaryIO) -> None:
        while chunk := source.read(1 << 20):
            self.write(chunk)

    def commit(self) -> int:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.create_only:
            try:
                # link() fails on an existing name atomically: of two racing writers one wins.
                os.link(self._tmp, self.final)
            except FileExistsError:
                raise ObjectExists(f"{self.final.name} is already stored") from None
            finally:
                self._tmp.unlink(missing_ok=True)
        else:
            os.replace(self._tmp, self.final)
        _fsync_dir(self.final.parent)
        return self.written

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable, not just the file contents.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage:
    def __init__(
        self, root: Path, public_url: str, secret: bytes, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if not secret:
            raise ValueError("local storage needs a non-empty signing secret")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.public_url = public_url.rstrip("/")
        self.max_bytes = max_bytes
        self._secret = secret

    # ------------------------------------------------------------------ paths

    def path_for(self, key: str) -> Path:
        """The file for key; raises InvalidKeyError for anything that could leave root."""
        validate_key(key)
        parts = key.split("/")
        path = self.root.joinpath(*parts)
        # Key validation already rules out traversal; this also refuses symlinks someone
        # may have planted inside the storage directory. Checking only the components
        # below root is far cheaper than realpath() on the hot archive-read path.
        current = self.root
        for part in parts:
            current = current / part
            try:
                if stat.S_ISLNK(os.lstat(current).st_mode):
                    raise InvalidKeyError(f"key {key!r} passes through a symlink")
            except FileNotFoundError:
                break
        return path

    # ------------------------------------------------------------------ signing

    def _signature(self, method: str, key: str, expires: int) -> str:
        message = f"{method}\n{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def presign(self, method: str, key: str, expires_in: int, *, now: float | None = None) -> str:
        if method not in SIGNED_METHODS:
            raise ValueError(f"cannot sign method {method!r}")
        validate_key(key)
        expires = int(now if now is not None else time.time()) + expires_in
        query = urlencode(
            {"method": method, "expires": expires, "sig": self._signature(method, key, expires)}
        )
        return f"{self.public_url}/storage/{quote(key, safe='/')}?{query}"

    def presign_put(self, key: str, expires_in: int) -> str:
        return self.presign("PUT", key, expires_in)

    def presign_get(self, key: str, expires_in: int) -> str:
        return self.presign("GET", key, expires_in)

    def verify(
        self,
        request_method: str,
        key: str,
        *,
        signed_method: str | None,
        expires: str | None,
        sig: str | None,
        now: float | None = None,
    ) -> None:
        """Raise SignatureError unless (method, key, expires, sig) is a valid live URL."""
        if not signed_method or not expires or not sig:
            raise SignatureError("missing method, expires or sig query parameter")
        try:
            expires_at = int(expires)
        except ValueError:
            raise SignatureError("malformed expires") from None
        expected = self._signature(signed_method, key, expires_at)
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise SignatureError("invalid signature")
        if expires_at < (now if now is not None else time.time()):
            raise SignatureError("signed URL expired")
        if signed_method != request_method:
            raise SignatureError(f"URL is signed for {signed_method}, not {request_method}")

    # ------------------------------------------------------------------ objects

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with self.path_for(key).open("rb") as handle:
            yield handle

    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self.open_read(key) as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def begin_write(
        self, key: str, *, capped: bool = True, create_only: bool = False
    ) -> AtomicWriter:
        """A writer for key; call commit() or abort() on it."""
        path = self.path_for(key)
        if create_only and path.exists():
            raise ObjectExists(f"{key} is already stored")  # refuse before reading a body
        return AtomicWriter(path, self.max_bytes if capped else None, create_only=create_only)

    def put_file(self, key: str, path: Path) -> None:
        # Server-side archives are not uploads: the upload cap does not apply.
        writer = self.begin_write(key, capped=False)
        try:
            with path.open("rb") as source:
                writer.copy_from(source)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        logger.info("stored %s (%d bytes)", key, writer.written)

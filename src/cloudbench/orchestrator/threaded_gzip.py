"""A write-only gzip stream that compresses on a background thread.

zlib releases the GIL while deflating, so the archive builder's Python work (reading
runner tarballs, building tar headers) overlaps with compression, the way `tar czf`
overlaps tar and gzip in two processes. Memory stays bounded: at most ``queue_depth``
chunks of ``chunk_size`` bytes are in flight.
"""

from __future__ import annotations

import gzip
import queue
import threading
from types import TracebackType
from typing import BinaryIO


class ThreadedGzipWriter:
    def __init__(
        self,
        raw: BinaryIO,
        compresslevel: int = 6,
        chunk_size: int = 1 << 20,
        queue_depth: int = 4,
    ) -> None:
        # filename="" keeps the temp file's name out of the gzip header.
        self._gzip = gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=compresslevel)
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self._queue: queue.Queue[bytes | None] = queue.Queue(queue_depth)
        self._error: BaseException | None = None
        self._position = 0
        self._closed = False
        self._thread = threading.Thread(target=self._compress, name="archive-gzip", daemon=True)
        self._thread.start()

    def _compress(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._gzip.write(chunk)
                except BaseException as exc:  # reported to the writer on its next call
                    self._error = exc

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: bytes) -> int:
        self._raise_pending()
        self._buffer += data
        self._position += len(data)
        if len(self._buffer) >= self._chunk_size:
            self._queue.put(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def tell(self) -> int:
        # tarfile asks for the position once when it opens the archive for writing.
        return self._position

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._buffer:
            self._queue.put(bytes(self._buffer))
            self._buffer.clear()
        self._queue.put(None)
        self._thread.join()
        self._raise_pending()
        self._gzip.close()

    def abort(self) -> None:
        """Stop the thread without finishing the gzip stream (the output is discarded)."""
        if not self._closed:
            self._closed = True
            self._error = self._error or RuntimeError("aborted")
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> ThreadedGzipWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

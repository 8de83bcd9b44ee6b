"""The background-thread gzip writer used by the archive builder."""

from __future__ import annotations

import gzip
import io
import os
import threading

import pytest

from cloudbench.orchestrator.threaded_gzip import ThreadedGzipWriter


def test_round_trip_in_order() -> None:
    raw = io.BytesIO()
    chunks = [os.urandom(n) for n in (1, 70_000, 3 << 20, 5)]
    with ThreadedGzipWriter(raw, chunk_size=64 << 10) as gz:
        for chunk in chunks:
            gz.write(chunk)
        assert gz.tell() == sum(map(len, chunks))
    assert gzip.decompress(raw.getvalue()) == b"".join(chunks)


class FullDisk(io.BytesIO):
    """Accepts the gzip header, then fails like a full disk."""

    def write(self, data: object) -> int:
        if self.tell() > 100:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_sink_failure_surfaces_to_the_writer() -> None:
    gz = ThreadedGzipWriter(FullDisk(), chunk_size=1024)
    with pytest.raises(OSError, match="No space"):
        for _ in range(100):
            gz.write(os.urandom(4096))
        gz.close()
    gz.abort()
    assert not any(t.name == "archive-gzip" for t in threading.enumerate())


def test_exception_in_block_stops_the_thread() -> None:
    with pytest.raises(RuntimeError, match="caller"), ThreadedGzipWriter(io.BytesIO()) as gz:
        gz.write(b"x" * 10)
        raise RuntimeError("caller failed")
    assert not any(t.name == "archive-gzip" for t in threading.enumerate())

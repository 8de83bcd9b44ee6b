"""A minimal streaming tar writer for the results archive.

tarfile's header encoder costs ~30 µs per member, a third of the archive builder's own
CPU at 10,000 tasks; plain ASCII names up to 100 bytes (every name we generate for
normal runs) get a struct-packed ustar header instead, and anything else falls back to
tarfile's PAX encoder, so the output is always a standard archive.
"""

from __future__ import annotations

import struct
import tarfile
from typing import IO, Protocol

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
_MAX_USTAR_SIZE = 8**11 - 1
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12s")
_CHUNK = 1 << 20


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...


def _ustar(name: str, size: int, mtime: int, mode: int, kind: bytes) -> bytes | None:
    raw = name.encode("ascii", "replace")
    if not name.isascii() or len(raw) > 100 or size > _MAX_USTAR_SIZE or mtime < 0:
        return None
    fields = (raw, b"%07o\0" % mode, b"0000000\0", b"0000000\0", b"%011o\0" % size)
    rest = (b"%011o\0" % mtime, b" " * 8, kind, b"", b"ustar\0", b"00")
    header = _HEADER.pack(*fields, *rest, b"", b"", b"", b"", b"", b"")
    # The checksum is the byte sum with the checksum field itself read as spaces.
    return header[:148] + b"%06o\0 " % sum(header) + header[156:]


def _pax(name: str, size: int, mtime: int, mode: int, kind: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, mtime, mode, kind
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarStreamWriter:
    """Writes tar members to a sink in order; close() writes the end-of-archive marker."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._offset = 0

    def _emit(self, data: bytes) -> None:
        self._sink.write(data)
        self._offset += len(data)

    def _header(self, name: str, size: int, mtime: int, mode: int, kind: bytes) -> None:
        self._emit(_ustar(name, size, mtime, mode, kind) or _pax(name, size, mtime, mode, kind))

    def add_dir(self, name: str, mtime: int, mode: int = 0o755) -> None:
        self._header(name.rstrip("/") + "/", 0, mtime, mode, tarfile.DIRTYPE)

    def add_bytes(self, name: str, data: bytes, mtime: int, mode: int = 0o644) -> None:
        self._header(name, len(data), mtime, mode, tarfile.REGTYPE)
        self._emit(data)
        self._pad(len(data))

    def add_stream(
        self, name: str, source: IO[bytes], size: int, mtime: int, mode: int = 0o644
    ) -> None:
        """Copy exactly size bytes from source as one member."""
        self._header(name, size, mtime, mode, tarfile.REGTYPE)
        remaining = size
        while remaining:
            chunk = source.read(min(remaining, _CHUNK))
            if not chunk:
                raise OSError(f"{name}: source ended {remaining} bytes early")
            self._emit(chunk)
            remaining -= len(chunk)
        self._pad(size)

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._emit(b"\0" * (BLOCK - size % BLOCK))

    def close(self) -> None:
        # Two zero blocks end the archive; pad to a full record like tar(1) does.
        self._emit(b"\0" * (2 * BLOCK))
        if self._offset % RECORD:
            self._emit(b"\0" * (RECORD - self._offset % RECORD))

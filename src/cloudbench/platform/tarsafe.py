"""Tar-slip-safe reading of tarballs we did not write (runner uploads, downloaded archives).

Only regular files and directories with relative, ``..``-free names are accepted;
absolute names, links, devices and fifos are refused. Extraction goes through tarfile's
``data`` filter, which keeps every target inside the destination (also through links
already on disk), refuses special files and drops owners and unsafe modes. What it does
not do is kept here: it strips a leading ``/`` instead of refusing it, allows links that
stay inside, accepts NUL and backslash, reads extended headers of any size, and writes a
sparse member at its declared size (129 bytes of tar can declare 1 TiB): sparse members
are refused, so every byte written is a byte of the archive.

Reading is linear: tarfile's stream mode (``r|gz``) slices its decompression buffer on
every read, quadratic on compressible data (32 MiB of zeros took 3.6 s, 1 GiB would take
most of an hour). Here gzip is a file object of its own (zlib-ng, bounded reads) under
tarfile's ordinary mode, which only ever seeks forward.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from zlib_ng import gzip_ng, zlib_ng


class UnsafeArchiveError(ValueError):
    """A tarball member that could escape its destination or is not plain data."""


# tarfile reads a GNU long name/link or PAX header whole into memory before parsing it; a
# few bytes of gzip can claim gigabytes there. Real ones are a few hundred bytes.
MAX_EXTENDED_HEADER = 1 << 20
_EXTENDED = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


class BoundedTarInfo(tarfile.TarInfo):
    """Pass as ``tarinfo=`` to tarfile.open: refuses oversized extended headers."""

    def _proc_member(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > MAX_EXTENDED_HEADER:
            raise UnsafeArchiveError(
                f"member {self.name!r}: extended header of {self.size} bytes"
                f" (limit {MAX_EXTENDED_HEADER})"
            )
        return super()._proc_member(tarfile)  # type: ignore[misc,no-any-return]


def member_name(info: tarfile.TarInfo) -> str | None:
    """The normalised relative name of a file or directory member.

    Returns None for the archive's own root entry (``./``); raises UnsafeArchiveError
    for anything that is not a plain file or directory with a contained name.
    """
    raw = info.name
    if "\x00" in raw or "\\" in raw:
        raise UnsafeArchiveError(f"member {raw!r}: NUL or backslash in name")
    if raw.startswith("/"):
        raise UnsafeArchiveError(f"member {raw!r}: absolute path")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"member {raw!r}: '..' in path")
    if info.issparse():
        # Its declared size is not in the tarball: refused, so sizes are bytes written.
        raise UnsafeArchiveError(f"member {raw!r}: sparse files are not allowed")
    if info.issym() or info.islnk():
        raise UnsafeArchiveError(f"member {raw!r}: links are not allowed")
    if not (info.isfile() or info.isdir()):
        raise UnsafeArchiveError(f"member {raw!r}: device, fifo or other special file")
    return "/".join(parts) or None


# zlib_ng's stub declares its error as an instance; at runtime it is an exception class.
_ZLIB_NG_ERROR = cast(type[Exception], zlib_ng.error)
# What a damaged (truncated, bit-flipped, not gzip, not tar) tarball raises on reading.
CORRUPT_ERRORS = (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, _ZLIB_NG_ERROR)
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def gunzip(fileobj: IO[bytes]) -> IO[bytes]:
    """A forward-reading decompressed view of a gzip stream (checks the CRC at its end)."""
    return cast(IO[bytes], gzip_ng.GzipNGFile(fileobj=fileobj, mode="rb"))  # type: ignore[no-untyped-call]


class _ForwardOnly(io.RawIOBase):
    """A stream that cannot seek (an S3 object's body) made seekable forward only, by
    reading: gzip's reader refuses every seek over such a stream, while tarfile's ordinary
    mode seeks to where it already is or beyond."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self._inner, self._pos = inner, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        data = self._inner.read(-1 if size is None else size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self._pos + offset
        if whence not in (os.SEEK_SET, os.SEEK_CUR) or target < self._pos:
            raise io.UnsupportedOperation("this stream only seeks forward")
        while self._pos < target and self.read(min(_CHUNK, target - self._pos)):
            pass
        return self._pos


@contextmanager
def open_tar(fileobj: IO[bytes], *, gzipped: bool = True) -> Iterator[tarfile.TarFile]:
    """A TarFile reading `fileobj` front to back in linear time (see the module doc).

    Iterate it once, in order; `extractfile` the current member only. On leaving, the
    rest of the gzip stream is read, so a damaged trailer (CRC, length) raises.
    """
    with ExitStack() as stack:
        raw = stack.enter_context(gunzip(fileobj)) if gzipped else fileobj
        if not fileobj.seekable():
            raw = cast(IO[bytes], _ForwardOnly(raw))
        tar = stack.enter_context(tarfile.open(fileobj=raw, mode="r:", tarinfo=BoundedTarInfo))
        yield tar
        if gzipped:
            while raw.read(_CHUNK):
                pass


def verify_gzip(path: Path) -> int:
    """Read a .gz file to its end (CRC and length checked); returns the bytes it expands to."""
    total = 0
    with path.open("rb") as raw, gunzip(raw) as data:
        while chunk := data.read(_CHUNK):
            total += len(chunk)
    return total


def _is_gzip(fileobj: IO[bytes]) -> bool:
    if not fileobj.seekable():
        return True
    start = fileobj.tell()
    magic = fileobj.read(2)
    fileobj.seek(start)
    return magic == _GZIP_MAGIC


def _data_only(
    dest: str, names: list[str]
) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]:
    def check(info: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        name = member_name(info)
        if name is None:
            return None
        try:
            filtered = tarfile.data_filter(info, path)
        except tarfile.OutsideDestinationError:
            target = os.path.join(dest, name)
            if os.path.islink(target):
                # Like O_NOFOLLOW: the destination, not the archive, holds the link.
                raise OSError(
                    errno.ELOOP, f"{target}: existing link, not written through"
                ) from None
            raise UnsafeArchiveError(
                f"member {info.name!r}: parent resolves outside dest"
            ) from None
        except tarfile.FilterError as exc:
            raise UnsafeArchiveError(f"member {info.name!r}: {exc}") from None
        if filtered.isfile():
            names.append(name)
        return filtered

    return check


def safe_extract(source: Path | BinaryIO, dest: Path, max_bytes: int | None = None) -> list[str]:
    """Extract a tarball (gzip or plain) into dest, refusing tar-slip and sparse members.

    Streams in linear time: members are read in order and never held in memory whole.
    On an unsafe member (or more than `max_bytes` of files) UnsafeArchiveError is raised;
    files extracted before it stay in dest (all inside dest), so callers wanting
    all-or-nothing should extract into a fresh directory and remove it on error.
    Returns the extracted file names.
    """
    if not hasattr(tarfile, "data_filter"):
        # Python 3.11.0-3.11.3 (Debian 12 ships 3.11.2) lack extraction filters; refuse
        # rather than extract without them.
        raise UnsafeArchiveError(
            "safe extraction needs Python >= 3.11.4 (tarfile extraction filters); "
            "run cloudbench on a newer Python"
        )
    dest.mkdir(parents=True, exist_ok=True)
    root = str(dest.resolve())
    names: list[str] = []
    check = _data_only(root, names)
    written = 0
    with ExitStack() as stack:
        fileobj = stack.enter_context(source.open("rb")) if isinstance(source, Path) else source
        tar = stack.enter_context(open_tar(fileobj, gzipped=_is_gzip(fileobj)))
        for info in tar:
            written += info.size if info.isfile() and not info.issparse() else 0
            if max_bytes is not None and written > max_bytes:
                raise UnsafeArchiveError(f"expands beyond {max_bytes} bytes")
            # One member at a time, in order: extractall would list them all first
            # (a second pass over the stream). S202: every member passes check first.
            tar.extract(info, root, set_attrs=True, filter=check)
    return names

"""Tar-slip-safe reading of tarballs we did not write (runner uploads, downloaded archives).

Only regular files and directories with relative, ``..``-free names are accepted;
absolute names, links, devices and fifos are refused. Extraction goes through tarfile's
``data`` filter, which keeps every target inside the destination (also through links
already on disk), refuses special files and drops owners and unsafe modes. What it does
not do is kept here: it strips a leading ``/`` instead of refusing it, allows links that
stay inside, accepts NUL and backslash, and reads extended headers of any size.
"""

from __future__ import annotations

import errno
import os
import tarfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO


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
    if info.issym() or info.islnk():
        raise UnsafeArchiveError(f"member {raw!r}: links are not allowed")
    if not (info.isfile() or info.isdir()):
        raise UnsafeArchiveError(f"member {raw!r}: device, fifo or other special file")
    return "/".join(parts) or None


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


def safe_extract(source: Path | BinaryIO, dest: Path) -> list[str]:
    """Extract a (possibly compressed) tarball into dest, refusing tar-slip members.

    Streams: members are read in order and never held in memory whole. On an unsafe
    member UnsafeArchiveError is raised; files extracted before it stay in dest (all
    inside dest), so callers wanting all-or-nothing should extract into a fresh
    directory and remove it on error. Returns the extracted file names.
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
    with ExitStack() as stack:
        fileobj = stack.enter_context(source.open("rb")) if isinstance(source, Path) else source
        tar = stack.enter_context(
            tarfile.open(fileobj=fileobj, mode="r|*", bufsize=1 << 16, tarinfo=BoundedTarInfo)
        )
        # S202 is about unfiltered extraction; every member passes _data_only first.
        tar.extractall(root, filter=_data_only(root, names))  # noqa: S202
    return names

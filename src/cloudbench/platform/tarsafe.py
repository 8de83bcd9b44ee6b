"""Tar-slip-safe reading of tarballs we did not write (runner uploads, downloaded archives).

Only regular files and directories with relative, ``..``-free names are accepted;
absolute names, links, devices and fifos are refused.
"""

from __future__ import annotations

import os
import shutil
import tarfile
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


def _open_no_follow(target: Path) -> BinaryIO:
    # O_NOFOLLOW: a symlink already sitting at the target is never written through.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    return os.fdopen(os.open(target, flags, 0o644), "wb")


def safe_extract(source: Path | BinaryIO, dest: Path) -> list[str]:
    """Extract a (possibly compressed) tarball into dest, refusing tar-slip members.

    Streams: members are read in order and never held in memory whole. On an unsafe
    member UnsafeArchiveError is raised; files extracted before it stay in dest (all
    inside dest), so callers wanting all-or-nothing should extract into a fresh
    directory and remove it on error. Returns the extracted file names.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    names: list[str] = []
    with ExitStack() as stack:
        fileobj = stack.enter_context(source.open("rb")) if isinstance(source, Path) else source
        tar = stack.enter_context(
            tarfile.open(fileobj=fileobj, mode="r|*", bufsize=1 << 16, tarinfo=BoundedTarInfo)
        )
        for info in tar:
            name = member_name(info)
            if name is None:
                continue
            target = root.joinpath(name)
            if info.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if not Path(os.path.realpath(target.parent)).is_relative_to(root):
                raise UnsafeArchiveError(f"member {info.name!r}: parent resolves outside dest")
            data = tar.extractfile(info)
            assert data is not None  # isfile() members always have data
            with data, _open_no_follow(target) as out:
                shutil.copyfileobj(data, out, 1 << 20)
            names.append(name)
    return names

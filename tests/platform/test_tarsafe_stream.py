"""open_tar over a stream that cannot seek, as an S3 object's body is (the result check at
/complete reads uploads from S3 this way; found through the AWS twin). Real tar.gz bytes,
a real non-seekable reader."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from cloudbench.platform.tarsafe import CORRUPT_ERRORS, member_name, open_tar


class _Unseekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 1000))  # short reads, as a socket gives
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_reads_every_member_of_an_unseekable_stream() -> None:
    files = {"output.json": json.dumps({"a": 1}).encode(), "big.bin": bytes(300_000) + b"x"}
    files["metadata.json"] = b"{}"
    stream = io.BufferedReader(_Unseekable(_tarball(files)))
    assert not stream.seekable()
    seen: dict[str, bytes] = {}
    with open_tar(stream) as tar:
        for info in tar:
            name = member_name(info)
            if name in ("output.json", "metadata.json"):  # read some, skip the others
                member = tar.extractfile(info)
                assert member is not None
                seen[name] = member.read()
    assert seen == {"output.json": files["output.json"], "metadata.json": b"{}"}


def test_a_truncated_unseekable_stream_is_corrupt() -> None:
    data = _tarball({"output.json": bytes(100_000)})
    stream = io.BufferedReader(_Unseekable(data[: len(data) // 2]))
    with pytest.raises(CORRUPT_ERRORS), open_tar(stream) as tar:
        for _ in tar:
            pass

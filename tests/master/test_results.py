"""Verification of the downloaded archive before anything is extracted."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from cloudbench.master.results import ResultsError, read_manifest


def verify_archive(path: Path, expected_task_ids: set[int]) -> dict[str, Any]:
    """`read_manifest`, as the JSON it would write."""
    return read_manifest(path, expected_task_ids).model_dump(mode="json")


def _archive(tmp_path: Path, manifest: object) -> Path:
    path = tmp_path / "results.tar.gz"
    data = json.dumps(manifest).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


TASK = {
    "task_id": 7,
    "provider": "local",
    "instance_type": "m",
    "alias": "m",
    "status": "completed",
    "directory": "m-7",
}


def test_a_good_manifest_passes(tmp_path: Path) -> None:
    manifest = verify_archive(_archive(tmp_path, {"tasks": [TASK]}), {7})
    assert manifest["tasks"][0]["directory"] == "m-7"


@pytest.mark.parametrize("version", [1, 2])
def test_manifest_formats_1_and_2_read(tmp_path: Path, version: int) -> None:
    task = TASK if version == 1 else {**TASK, "attempt": 2, "attempts": [{"attempt": 1}]}
    body = {"format_version": version, "run_id": 5, "tasks": [task]}
    manifest = verify_archive(_archive(tmp_path, body), {7})
    assert manifest["format_version"] == version
    assert manifest["tasks"][0]["attempt"] == (1 if version == 1 else 2)


def test_a_newer_manifest_says_upgrade(tmp_path: Path) -> None:
    with pytest.raises(ResultsError) as err:
        verify_archive(_archive(tmp_path, {"format_version": 4, "tasks": [TASK]}), {7})
    assert "upgrade cloudbench" in str(err.value)


@pytest.mark.parametrize(
    "manifest,needle",
    [
        ({"tasks": [{k: v for k, v in TASK.items() if k != "task_id"}]}, "unexpected shape"),
        ({"tasks": "all of them"}, "unexpected shape"),
        ({"tasks": [TASK]}, "does not list task(s) [8]"),
    ],
)
def test_a_bad_manifest_is_a_clear_error(tmp_path: Path, manifest: object, needle: str) -> None:
    with pytest.raises(ResultsError) as err:
        verify_archive(_archive(tmp_path, manifest), {7, 8})
    assert needle in str(err.value)


def test_a_flipped_crc_is_refused_before_extraction(tmp_path: Path) -> None:
    """tarfile's stream mode never checks the gzip trailer: a damaged archive whose tar
    still parsed was extracted as if whole. The master reads it end to end first."""
    path = _archive(tmp_path, {"tasks": [TASK]})
    data = bytearray(path.read_bytes())
    data[-8] ^= 0x01  # the CRC32 of the trailer; the deflate data stays readable
    path.write_bytes(bytes(data))
    with pytest.raises(ResultsError, match="damaged"):
        verify_archive(path, {7})


def test_a_flipped_data_byte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.tar.gz"
    payload = json.dumps({"tasks": [TASK]}).encode()
    with tarfile.open(path, "w:gz", compresslevel=0) as tar:  # stored blocks: bytes as is
        for name, data in (("manifest.json", payload), ("m-7/output.txt", b"RESULT 1.000\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = bytearray(path.read_bytes())
    at = raw.index(b"RESULT 1.000")
    raw[at + 7] = ord("9")
    path.write_bytes(bytes(raw))
    with pytest.raises(ResultsError, match="damaged"):
        verify_archive(path, {7})

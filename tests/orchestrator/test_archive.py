"""The per-run results archive built from real runner tarballs in real LocalStorage."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from cloudbench.orchestrator.archive import (
    ArchiveTask,
    UnsafeArchiveError,
    build_archive,
    safe_extract,
    task_directory,
)
from cloudbench.orchestrator.storage.base import archive_key, error_key, result_key
from cloudbench.orchestrator.storage.local import LocalStorage
from cloudbench.protocol import TaskStatus

RUN = 42
OUTPUTS = {
    "output.txt": b"fib  12.3 ms\n",
    "output.json": b'{"raw_data": {"fib": [12.3]}}',
    "output.csv": b"bench,ms\nfib,12.3\n",
    "metadata.json": b'{"ruby": "3.4.1"}',
}


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> Any:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, link, 1_700_000_000
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def tarball(*members: Any) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def outputs_tarball(prefix: str = "./") -> bytes:
    dirs = [member(prefix, kind=tarfile.DIRTYPE)] if prefix else []
    return tarball(*dirs, *(member(prefix + n, d) for n, d in OUTPUTS.items()))


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage", "http://orchestrator", b"secret")


def store(storage: LocalStorage, key: str, data: bytes) -> str:
    writer = storage.begin_write(key)
    writer.write(data)
    writer.commit()
    return key


def task(task_id: int, status: str = "completed", **kw: Any) -> ArchiveTask:
    defaults: dict[str, Any] = {"provider": "aws", "instance_type": "c7g.large", "alias": None}
    defaults.update(kw)
    return ArchiveTask(task_id=task_id, run_number=task_id, status=TaskStatus(status), **defaults)


def build(storage: LocalStorage, tmp_path: Path, tasks: list[ArchiveTask]) -> dict[str, bytes]:
    """Build, then read the stored archive back: {name: data, dir name + '/': b''}."""
    workdir = tmp_path / "work"
    result = build_archive(
        storage=storage, run_id=RUN, tasks=tasks, removed_tasks=3, workdir=workdir
    )
    assert result.key == archive_key(RUN)
    assert result.size_bytes == (storage.root / result.key).stat().st_size
    assert list(workdir.iterdir()) == []  # the temp archive is gone
    # GNU tar must accept what we wrote (our own ustar headers).
    listing = subprocess.run(
        ["tar", "tzf", str(storage.root / result.key)], capture_output=True, text=True, check=True
    )
    contents: dict[str, bytes] = {}
    with storage.open_read(result.key) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        for info in tar:
            data = tar.extractfile(info)
            contents[info.name + ("/" if info.isdir() else "")] = data.read() if data else b""
    assert sorted(listing.stdout.split()) == sorted(contents)
    return contents


def manifest(contents: dict[str, bytes]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(contents["manifest.json"])
    return loaded


def test_full_run_layout_and_manifest(storage: LocalStorage, tmp_path: Path) -> None:
    store(storage, result_key(RUN, 1, lease=1), outputs_tarball())
    store(storage, result_key(RUN, 2, lease=1), outputs_tarball(prefix=""))
    store(
        storage,
        error_key(RUN, 3, lease=1),
        tarball(member("stderr.log", b"boom\n"), member("error.txt", b"runner's own")),
    )
    store(storage, result_key(RUN, 6, lease=1), os.urandom(3000))
    store(storage, result_key(RUN, 7, lease=1), outputs_tarball()[:200])  # truncated upload
    tasks = [
        task(1, alias="yjit:fast/1", result_key=result_key(RUN, 1, lease=1)),
        task(2, instance_type="m7i.large", result_key=result_key(RUN, 2, lease=1)),
        task(
            3,
            "failed",
            error_type="benchmark_failed",
            error_message="fib crashed",
            error_key=error_key(RUN, 3, lease=1),
        ),
        task(4, "failed", error_type="timeout", error_message="took 12h"),
        task(5, "cancelled", error_type="cancelled", error_message="run stopped"),
        task(6, result_key=result_key(RUN, 6, lease=1)),
        task(7, result_key=result_key(RUN, 7, lease=1)),
        task(8, result_key=result_key(RUN, 8, lease=1)),  # never uploaded
        task(
            9,
            "failed",
            error_type="upload_failed",
            error_message="x",
            error_key=error_key(RUN, 9, lease=1),
        ),
    ]
    contents = build(storage, tmp_path, tasks)

    dirs = ["yjit_fast_1-1", "m7i.large-2"] + [f"c7g.large-{i}" for i in range(3, 10)]
    expected = {"manifest.json"} | {f"{d}/" for d in dirs}
    expected |= {f"{d}/{name}" for d in dirs[:2] for name in OUTPUTS}
    expected |= {f"c7g.large-{i}/error.txt" for i in (3, 4, 5, 9)} | {"c7g.large-3/stderr.log"}
    assert set(contents) == expected
    assert contents["yjit_fast_1-1/output.json"] == OUTPUTS["output.json"]
    assert contents["m7i.large-2/metadata.json"] == OUTPUTS["metadata.json"]
    assert contents["c7g.large-3/stderr.log"] == b"boom\n"
    assert contents["c7g.large-3/error.txt"] == (
        b"status: failed\nerror_type: benchmark_failed\n\nfib crashed\n"
    )
    assert contents["c7g.large-5/error.txt"].startswith(b"status: cancelled\n")

    body = manifest(contents)
    assert (body["run_id"], body["removed_tasks"], body["task_count"]) == (RUN, 3, 9)
    entries = {t["task_id"]: t for t in body["tasks"]}
    assert entries[1] == {
        "task_id": 1,
        "provider": "aws",
        "instance_type": "c7g.large",
        "alias": "yjit:fast/1",
        "run_number": 1,
        "status": "completed",
        "directory": "yjit_fast_1-1",
        "error": None,
        "files": sorted(OUTPUTS),
        "problems": [],
        "attempt": 1,
        "attempts": [],
        "ruby_versions": [],  # manifest 3; the builder's inputs here name no Ruby
    }
    assert body["counts"] == []  # per type x Ruby: no task here names its Ruby
    assert entries[3]["error"] == {"type": "benchmark_failed", "message": "fib crashed"}
    assert entries[3]["files"] == ["error.txt", "stderr.log"]
    assert entries[3]["problems"] == ["skipped duplicate or reserved member 'error.txt'"]
    assert (entries[4]["files"], entries[4]["problems"]) == (["error.txt"], [])
    assert entries[5]["error"] == {"type": "cancelled", "message": "run stopped"}
    for corrupt in (6, 7):
        assert entries[corrupt]["files"] == []
        assert entries[corrupt]["problems"][0].startswith("result tarball corrupt: ")
    assert entries[8]["problems"] == [f"result tarball missing: {result_key(RUN, 8, lease=1)}"]
    assert entries[9]["problems"] == [f"error tarball missing: {error_key(RUN, 9, lease=1)}"]
    assert entries[9]["files"] == ["error.txt"]


@pytest.mark.parametrize(
    "case",
    [
        (member("/etc/cron.d/evil", b"x"), "absolute path"),
        (member("../escape.txt", b"x"), "'..' in path"),
        (member("sub/../../escape.txt", b"x"), "'..' in path"),
        (member("link", kind=tarfile.SYMTYPE, link="/etc/passwd"), "links are not allowed"),
        (member("hard", kind=tarfile.LNKTYPE, link="output.json"), "links are not allowed"),
        (member("fifo", kind=tarfile.FIFOTYPE), "device, fifo or other special file"),
        (member("dev", kind=tarfile.CHRTYPE), "device, fifo or other special file"),
        (member("back\\slash", b"x"), "NUL or backslash in name"),
    ],
    ids=["absolute", "dotdot", "nested-dotdot", "symlink", "hardlink", "fifo", "device", "bs"],
)
def test_tar_slip_tarball_is_refused_whole(
    storage: LocalStorage, tmp_path: Path, case: Any
) -> None:
    evil, reason = case
    bad = tarball(member("output.json", b"{}"), evil)
    store(storage, result_key(RUN, 1, lease=1), bad)
    store(storage, result_key(RUN, 2, lease=1), outputs_tarball())
    tasks = [
        task(1, result_key=result_key(RUN, 1, lease=1)),
        task(2, result_key=result_key(RUN, 2, lease=1)),
    ]
    contents = build(storage, tmp_path, tasks)
    assert not [name for name in contents if name.startswith("c7g.large-1/") and name[-1] != "/"]
    assert sum(name.startswith("c7g.large-2/") for name in contents) == 5
    entry = manifest(contents)["tasks"][0]
    assert entry["files"] == []
    assert entry["problems"] == [f"result tarball refused: member {evil[0].name!r}: {reason}"]
    assert not (tmp_path / "escape.txt").exists()


def test_missing_result_key_and_empty_tarball(storage: LocalStorage, tmp_path: Path) -> None:
    store(storage, result_key(RUN, 2, lease=1), tarball(member("./", kind=tarfile.DIRTYPE)))
    tasks = [task(1), task(2, result_key=result_key(RUN, 2, lease=1))]
    entries = manifest(build(storage, tmp_path, tasks))["tasks"]
    assert entries[0]["problems"] == ["completed task has no result key"]
    assert entries[1]["problems"] == ["result tarball holds no files"]


def test_long_and_non_ascii_names_fall_back_to_pax(storage: LocalStorage, tmp_path: Path) -> None:
    long_name = "logs/" + "x" * 150 + ".txt"
    store(
        storage,
        result_key(RUN, 1, lease=1),
        tarball(member(long_name, b"long"), member("é.txt", b"e")),
    )
    contents = build(
        storage, tmp_path, [task(1, alias="a" * 128, result_key=result_key(RUN, 1, lease=1))]
    )
    directory = "a" * 100 + "-1"
    assert contents[f"{directory}/{long_name}"] == b"long"
    assert contents[f"{directory}/é.txt"] == b"e"


def test_failed_upload_propagates_and_cleans_up(tmp_path: Path) -> None:
    class FullDisk(LocalStorage):
        def put_file(self, key: str, path: Path) -> None:
            raise OSError(28, "No space left on device")

    storage = FullDisk(tmp_path / "s", "http://x", b"k")
    with pytest.raises(OSError, match="No space"):
        build_archive(
            storage=storage, run_id=1, tasks=[task(1)], removed_tasks=0, workdir=tmp_path / "w"
        )
    assert list((tmp_path / "w").iterdir()) == []


def test_task_directory_sanitises() -> None:
    assert task_directory(task(5, alias="../../etc")) == "etc-5"
    assert task_directory(task(6, alias="...")) == "task-6"
    assert task_directory(task(7, instance_type="Standard_D2s_v5")) == "Standard_D2s_v5-7"


def test_safe_extract_round_trip(tmp_path: Path) -> None:
    data = outputs_tarball()
    names = safe_extract(io.BytesIO(data), tmp_path / "out")
    assert sorted(names) == sorted(OUTPUTS)
    assert (tmp_path / "out" / "output.csv").read_bytes() == OUTPUTS["output.csv"]
    path = tmp_path / "t.tar.gz"
    path.write_bytes(gzip.compress(gzip.decompress(data)))
    assert sorted(safe_extract(path, tmp_path / "out2")) == sorted(OUTPUTS)


@pytest.mark.parametrize(
    "case",
    [
        (member("/tmp/abs.txt", b"x"), "absolute path"),
        (member("../escape.txt", b"x"), "'..' in path"),
        (member("link", kind=tarfile.SYMTYPE, link="../escape.txt"), "links are not allowed"),
        (member("hard", kind=tarfile.LNKTYPE, link="/etc/passwd"), "links are not allowed"),
        (member("blk", kind=tarfile.BLKTYPE), "device, fifo"),
    ],
)
def test_safe_extract_refuses_tar_slip(tmp_path: Path, case: Any) -> None:
    evil, reason = case
    with pytest.raises(UnsafeArchiveError, match=reason):
        safe_extract(io.BytesIO(tarball(evil)), tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_safe_extract_does_not_write_through_existing_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "output.txt").symlink_to(victim)
    with pytest.raises(OSError):
        safe_extract(io.BytesIO(tarball(member("output.txt", b"overwrite"))), dest)
    assert victim.read_text() == "keep"


def test_safe_extract_refuses_parent_link_planted_in_dest(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(UnsafeArchiveError, match="parent resolves outside dest"):
        safe_extract(io.BytesIO(tarball(member("sub/x.txt", b"x"))), dest)
    assert list(outside.iterdir()) == []


def test_safe_extract_drops_setuid_and_group_write(tmp_path: Path) -> None:
    info, data = member("tool", b"#!/bin/sh\n")
    info.mode = 0o6777
    safe_extract(io.BytesIO(tarball((info, data))), tmp_path / "out")
    assert (tmp_path / "out" / "tool").stat().st_mode & 0o7777 == 0o755


def _header_bomb(path: Path, kind: bytes, size: int) -> None:
    """A small .tar.gz whose one extended header (GNU long name or PAX) claims `size` bytes."""
    info = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "pax")
    info.type, info.size = kind, size
    chunk = b"a" * (1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(
            info.tobuf(tarfile.USTAR_FORMAT if kind == tarfile.XHDTYPE else tarfile.GNU_FORMAT)
        )
        for _ in range(size // len(chunk)):
            out.write(chunk)
        out.write(b"\0" * (2 * tarfile.BLOCKSIZE))


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE], ids=["gnu", "pax"])
def test_oversized_extended_header_is_refused_in_bounded_memory(
    storage: LocalStorage, tmp_path: Path, kind: bytes
) -> None:
    """tarfile reads a long-name/PAX header whole into memory: a 1 MB upload claiming a
    256 MiB header must be refused, not buffered (the archive builder runs in the server)."""
    import tracemalloc

    bomb = tmp_path / "bomb.tar.gz"
    _header_bomb(bomb, kind, 256 << 20)
    storage.put_file(result_key(RUN, 1, lease=1), bomb)
    tracemalloc.start()
    try:
        contents = build(storage, tmp_path, [task(1, result_key=result_key(RUN, 1, lease=1))])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak {peak >> 20} MiB"
    [problem] = manifest(contents)["tasks"][0]["problems"]
    assert problem.startswith("result tarball refused:"), problem


def test_member_cap_counts_duplicates(storage: LocalStorage, tmp_path: Path) -> None:
    """Duplicates were skipped without counting, one problem line each: a tarball of
    millions of identical tiny headers grew the manifest (and memory) without bound."""
    same = [member("output.txt", b"x") for _ in range(10_001)]
    store(storage, result_key(RUN, 1, lease=1), tarball(*same))
    entry = manifest(build(storage, tmp_path, [task(1, result_key=result_key(RUN, 1, lease=1))]))
    assert entry["tasks"][0]["problems"] == ["result tarball refused: more than 10000 members"]


def test_safe_extract_refuses_oversized_extended_header(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    _header_bomb(bomb, tarfile.XHDTYPE, 64 << 20)
    with pytest.raises(UnsafeArchiveError, match="extended header"):
        safe_extract(bomb, tmp_path / "out")


def test_file_and_directory_with_one_name_do_not_break_extraction(
    storage: LocalStorage, tmp_path: Path
) -> None:
    """A runner tarball holding both `logs` (a file) and `logs/x.txt` made an archive that
    no tar (nor the master's safe_extract) can unpack: one bad task broke the whole run."""
    store(
        storage,
        result_key(RUN, 1, lease=1),
        tarball(member("output.txt", b"ok"), member("logs", b"f"), member("logs/x.txt", b"x")),
    )
    store(
        storage,
        error_key(RUN, 2, lease=1),
        tarball(member("error.txt/inner.txt", b"x"), member("runner.log", b"log")),
    )
    tasks = [
        task(1, result_key=result_key(RUN, 1, lease=1)),
        task(2, status="failed", error_type="boom", error_key=error_key(RUN, 2, lease=1)),
    ]
    entries = manifest(build(storage, tmp_path, tasks))["tasks"]
    assert entries[0]["files"] == ["logs", "output.txt"]
    assert entries[0]["problems"] == ["skipped member 'logs/x.txt': its parent is a file"]
    assert entries[1]["files"] == ["error.txt", "runner.log"]
    names = safe_extract(storage.root / archive_key(RUN), tmp_path / "extracted")
    assert "c7g.large-1/logs" in names and "c7g.large-2/runner.log" in names


def _sparse_tarball(tmp_path: Path, declared: int) -> Path:
    """A real GNU sparse tarball (`tar -S`): a few bytes of data, `declared` bytes of size."""
    src = tmp_path / "sparse-src"
    src.mkdir()
    for name, data in OUTPUTS.items():
        (src / name).write_bytes(data)
    with (src / "output.txt").open("r+b") as f:
        f.truncate(declared)
        f.seek(declared - 4)
        f.write(b"end\n")
    out = tmp_path / "sparse.tar.gz"
    subprocess.run(["tar", "-cSzf", str(out), "-C", str(src), *OUTPUTS], check=True)
    return out


def test_sparse_member_is_refused_not_expanded(storage: LocalStorage, tmp_path: Path) -> None:
    """A sparse member declares a size its tarball does not hold: 129 bytes can say 1 TiB,
    and extractfile writes it all. The builder refuses it (it counted only tar bytes)."""
    declared = 256 << 20
    tarball_path = _sparse_tarball(tmp_path, declared)
    assert tarball_path.stat().st_size < 4096  # the upload is tiny
    storage.put_file(result_key(RUN, 1, lease=1), tarball_path)
    contents = build(storage, tmp_path, [task(1, result_key=result_key(RUN, 1, lease=1))])
    [entry] = manifest(contents)["tasks"]
    assert entry["files"] == []
    assert entry["problems"] == [
        "result tarball refused: member 'output.txt': sparse files are not allowed"
    ]
    assert (storage.root / archive_key(RUN)).stat().st_size < 64 << 10


def test_safe_extract_refuses_sparse_members(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchiveError, match="sparse"):
        safe_extract(_sparse_tarball(tmp_path, 64 << 20), tmp_path / "out")
    assert not (tmp_path / "out" / "output.txt").exists()


def test_cap_counts_bytes_written(storage: LocalStorage, tmp_path: Path) -> None:
    big = member("output.txt", b"x" * 300_000)
    store(storage, result_key(RUN, 1, lease=1), tarball(big, member("metadata.json", b"{}")))
    result = build_archive(
        storage=storage,
        run_id=RUN,
        removed_tasks=0,
        workdir=tmp_path / "w",
        tasks=[task(1, result_key=result_key(RUN, 1, lease=1))],
        max_task_bytes=200_000,
    )
    assert result.tasks_with_problems == 1
    path = tmp_path / "big.tar.gz"
    path.write_bytes(tarball(big))
    with pytest.raises(UnsafeArchiveError, match="expands beyond 200000 bytes"):
        safe_extract(path, tmp_path / "out", max_bytes=200_000)
    assert safe_extract(path, tmp_path / "out2", max_bytes=300_000) == ["output.txt"]


def test_result_expanding_to_256_mib_is_accepted(storage: LocalStorage, tmp_path: Path) -> None:
    """The caps stay far above a real result: 256 MiB of output is archived and extracted."""
    src = tmp_path / "src"
    src.mkdir()
    with (src / "output.txt").open("wb") as f:
        for _ in range(256):
            f.write(b"itr #1: 12ms\n".ljust(1 << 20, b"\0"))
    (src / "metadata.json").write_bytes(b"{}")
    upload_path = tmp_path / "result.tar.gz"
    subprocess.run(["tar", "-czf", str(upload_path), "-C", str(src), "."], check=True)
    storage.put_file(result_key(RUN, 1, lease=1), upload_path)
    result = build_archive(
        storage=storage,
        run_id=RUN,
        removed_tasks=0,
        workdir=tmp_path / "w",
        tasks=[task(1, result_key=result_key(RUN, 1, lease=1))],
    )
    assert result.tasks_with_problems == 0
    names = safe_extract(storage.root / archive_key(RUN), tmp_path / "out")
    assert "c7g.large-1/output.txt" in names
    assert (tmp_path / "out" / "c7g.large-1" / "output.txt").stat().st_size == 256 << 20

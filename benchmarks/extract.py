"""The master's extraction against `tar xzf` on the same archive (issue 25).

    uv run python benchmarks/extract.py              # 256 MiB of zeros
    uv run python benchmarks/extract.py --mib 1024

Builds one .tar.gz holding a file of N MiB of zeros (the most compressible input, where
tarfile's stream mode was quadratic: 32 MiB took 3.6 s), then times, in this process,
each `rounds` times: the master's end-to-end check (`verify_gzip`, gzip CRC and length),
`safe_extract` into a fresh directory, and `tar xzf` of the same file. Prints the best
time of each and the ratio safe_extract / tar xzf. Target: <= 2.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cloudbench.platform.tarsafe import safe_extract, verify_gzip


def _build(root: Path, mib: int) -> Path:
    src = root / "src"
    src.mkdir()
    with (src / "output.txt").open("wb") as out:
        block = bytes(1 << 20)
        for _ in range(mib):
            out.write(block)
    archive = root / "zeros.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(src), "output.txt"], check=True)
    shutil.rmtree(src)
    return archive


def _best(rounds: int, fresh: Path, work: Callable[[Path], object]) -> float:
    times = []
    for _ in range(rounds):
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir()
        started = time.perf_counter()
        work(fresh)
        times.append(time.perf_counter() - started)
    shutil.rmtree(fresh, ignore_errors=True)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cloudbench-extract-") as tmp:
        root = Path(tmp)
        archive = _build(root, args.mib)
        size = archive.stat().st_size
        out = root / "out"
        verify = _best(args.rounds, out, lambda _: verify_gzip(archive))
        ours = _best(args.rounds, out, lambda dest: safe_extract(archive, dest))
        tar = _best(
            args.rounds,
            out,
            lambda dest: subprocess.run(["tar", "xzf", str(archive), "-C", str(dest)], check=True),
        )
    print(f"archive: {args.mib} MiB of zeros ({size} bytes gzipped), best of {args.rounds}")
    print(f"verify_gzip (end-to-end CRC): {verify:.3f} s")
    print(f"safe_extract:                 {ours:.3f} s")
    print(f"tar xzf:                      {tar:.3f} s")
    print(f"ratio safe_extract / tar xzf: {ours / tar:.2f} (target <= 2)")


if __name__ == "__main__":
    main()

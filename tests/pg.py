"""A throwaway PostgreSQL cluster from Debian's packages, started by the tests themselves."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cloudbench.platform.processes import free_port

__all__ = ["Cluster", "free_port"]


def pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found: run scripts/test (it installs Debian's "
            "postgresql package) or set CLOUDBENCH_TEST_DATABASE_URL"
        )
    return Path(candidates[-1]).parent


class Cluster:
    """initdb + pg_ctl in a temp dir, as the postgres user when running as root."""

    def __init__(self, *, durable: bool = False) -> None:
        # Tests run with fsync off for speed; benchmarks pass durable=True to keep
        # Debian's production defaults (fsync, synchronous_commit, full_page_writes on).
        self.durable = durable
        self.bindir = pg_bindir()
        self.datadir = Path(tempfile.mkdtemp(prefix="cloudbench-pg-"))
        self.port = free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        if self.as_root:
            shutil.chown(self.datadir, "postgres")
        self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres")
        opts = f"-p {self.port} -k {self.datadir} -c max_connections=400"
        if not self.durable:
            opts += " -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-o",
            f"'{opts}'",
            "-l",
            str(self.datadir / "log"),
            "-w",
            "start",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"postgres did not start; see {self.datadir}/log")

    def postmaster_pid(self) -> int:
        return int((self.datadir / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.datadir, ignore_errors=True)

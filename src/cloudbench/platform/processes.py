"""Child-process helpers: free ports, environments, stopping, log tails."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import psutil

from cloudbench.platform.state import ProcRecord, is_ours

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(drop_all_cloudbench: bool, drop: Iterable[str] = ()) -> dict[str, str]:
    """The parent's environment without settings a child must not inherit by accident.

    The embedded orchestrator gets none of the user's CLOUDBENCH_* variables (a stray
    CLOUDBENCH_DATABASE_URL must never point it at a real database); runners keep them
    (task timeouts and the like) except the ones named in ``drop``.
    """
    dropped = set(drop)
    return {
        k: v
        for k, v in os.environ.items()
        if k not in dropped and not (drop_all_cloudbench and k.startswith("CLOUDBENCH_"))
    }


def terminate(procs: list[psutil.Process], grace: float) -> list[psutil.Process]:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns what still lives."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        logger.warning("pid %d ignored SIGTERM for %.0fs; killing it", proc.pid, grace)
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _, still = psutil.wait_procs(alive, timeout=5)
    return still


def tail(path: Path, lines: int = 15) -> str:
    try:
        with path.open("rb") as src:
            src.seek(0, os.SEEK_END)
            src.seek(max(0, src.tell() - 8192))
            text = src.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def stop_recorded(records: list[ProcRecord], grace: float) -> list[ProcRecord]:
    """Stop recorded processes that are still ours (runners before orchestrators)."""
    survivors: list[ProcRecord] = []
    for role in ("runner", "orchestrator"):
        live = {}
        for record in records:
            proc = is_ours(record) if record.role == role else None
            if proc is not None:
                live[proc.pid] = (record, proc)
        still = terminate([proc for _, proc in live.values()], grace) if live else []
        survivors += [live[p.pid][0] for p in still]
    return survivors

"""`cloudbench run --resume RUN_ID|latest`: what a run was started with, and what is left.

Every run the master creates leaves a record (``<home>/records/<run_id>.json``, owner
only): its state directory (the embedded orchestrator's database lives there) and the
``POST /runs`` body it was created with. A resume must be given the same config; the
differences are listed, field by field, when it is not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cloudbench.platform import containers
from cloudbench.platform.processes import stop_recorded
from cloudbench.platform.state import cloudbench_home, find_session, write_private
from cloudbench.protocol import RunOut


class ResumeError(RuntimeError):
    """The run cannot be resumed as asked; the message says why and what to do."""


class RunRecord(BaseModel):
    run_id: int
    state_dir: str
    body: dict[str, Any]
    orchestrator_url: str | None = None  # --orchestrator-url; None: embedded or meta
    meta: bool = False  # the AWS meta deployment's orchestrator (reused on resume)


def records_dir() -> Path:
    return cloudbench_home() / "records"


def save_record(record: RunRecord) -> None:
    write_private(records_dir() / f"{record.run_id}.json", record.model_dump_json(indent=2))


def load_record(which: str) -> RunRecord:
    """RUN_ID or latest (the newest run this machine started)."""
    if which == "latest":
        ids = sorted(int(p.stem) for p in records_dir().glob("*.json") if p.stem.isdigit())
        if not ids:
            raise ResumeError(f"--resume latest: no run was started from here ({records_dir()})")
        which = str(ids[-1])
    if not which.isdigit():
        raise ResumeError(f"--resume {which!r}: pass a run id or latest")
    path = records_dir() / f"{which}.json"
    try:
        return RunRecord.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise ResumeError(
            f"--resume {which}: no record of that run here ({path}); "
            "use `cloudbench status RUN_ID --orchestrator-url URL` to follow it"
        ) from None
    except (OSError, ValidationError) as exc:
        raise ResumeError(f"--resume {which}: unreadable record {path}: {exc}") from None


def differences(recorded: Any, given: Any, path: str = "") -> list[str]:
    """Every field where the config given now differs from the one the run was made with."""
    if isinstance(recorded, dict) and isinstance(given, dict):
        out: list[str] = []
        for key in sorted(set(recorded) | set(given), key=str):
            where = f"{path}.{key}" if path else str(key)
            out += differences(recorded.get(key), given.get(key), where)
        return out
    if recorded == given:
        return []
    return [f"{path}: recorded {_show(recorded)}, now {_show(given)}"]


def _show(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, sort_keys=True)


def remaining(run: RunOut) -> frozenset[str]:
    """Aliases that still have tasks to run (pending, or held by a runner that may be gone)."""
    return frozenset(
        g.alias
        for g in run.instance_types
        if g.counts.pending + g.counts.claimed + g.counts.running > 0
    )


def retire_session(run_id: int) -> None:
    """What a killed master left running for run_id: stopped, so a resume owns it all.

    Its runners are stopped gracefully (they report their tasks failed as runner_error,
    which is retried), then its embedded orchestrator; the database stays.
    """
    old = find_session(run_id)
    if old is None:
        return
    if old.master_alive():
        raise ResumeError(
            f"run {run_id} is still followed by a master (pid {old.master_pid}); "
            f"use `cloudbench status {run_id}` to watch it"
        )
    left = stop_recorded(old.processes, 15.0)
    if left:
        raise ResumeError(f"run {run_id}: could not stop {len(left)} old process(es): {left}")
    containers.remove_ours(run_id, old.orchestrator_url)
    old.remove()

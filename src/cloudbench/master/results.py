"""Download, verify and extract a finished run's archive; summarise it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from cloudbench.master.client import OrchestratorClient, download
from cloudbench.platform.tarsafe import (
    CORRUPT_ERRORS,
    UnsafeArchiveError,
    member_name,
    open_tar,
    safe_extract,
)
from cloudbench.protocol import (
    MANIFEST_NAME,
    ArchiveState,
    Manifest,
    RunOut,
    RunStatus,
    TaskStatus,
)

REPORT_TIMEOUT = 600  # seconds; far above what the 100-type benchmark needs
# manifest.json lists every task in a few hundred bytes each; MAX_TASKS_PER_RUN fit.
MAX_MANIFEST = 256 << 20  # bytes

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_INCOMPLETE = 0, 1, 2


class ResultsError(RuntimeError):
    pass


@dataclass
class TypeSummary:
    provider: str
    instance_type: str
    alias: str
    completed: int = 0
    failed: int = 0
    directories: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    run_id: int
    status: str
    exit_code: int
    results_dir: str | None
    tasks: dict[str, int]
    removed_tasks: int = 0
    instance_types: list[TypeSummary] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def fetch_results(client: OrchestratorClient, run: RunOut, results_root: Path) -> Outcome:
    """Stream the archive to disk, check it lists every task, extract it safely."""
    if run.archive_state == ArchiveState.failed:
        raise ResultsError(f"the orchestrator could not build the archive: {run.archive_error}")
    if run.archive_state != ArchiveState.ready or not run.gzip_url:
        raise ResultsError(f"archive not ready (state {run.archive_state})")
    expected = {t.id for t in client.tasks(run.run_id).tasks}
    results_root.mkdir(parents=True, exist_ok=True)
    partial = results_root / f".{run.run_id}.tar.gz.part"
    staging = results_root / f".{run.run_id}.extracting"
    final = results_root / str(run.run_id)
    try:
        size = download(run.gzip_url, partial, client.cert_pem)
        logger.info("downloaded archive of run %d (%d bytes)", run.run_id, size)
        manifest = read_manifest(partial, expected)
        shutil.rmtree(staging, ignore_errors=True)
        safe_extract(partial, staging)
        shutil.rmtree(final, ignore_errors=True)  # `status` may fetch a run twice
        staging.rename(final)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return summarise(run, manifest, final)


def read_manifest(path: Path, expected_task_ids: set[int]) -> Manifest:
    """Read the whole archive once, before anything is extracted: gzip intact end to end
    (CRC and length, which tarfile's stream mode never checked), tar intact, names safe,
    manifest complete. Linear in the archive's size (platform/tarsafe.open_tar)."""
    raw: bytes | None = None
    try:
        with path.open("rb") as fileobj, open_tar(fileobj) as tar:
            for info in tar:
                if member_name(info) == MANIFEST_NAME:
                    data = tar.extractfile(info)
                    assert data is not None
                    raw = data.read(MAX_MANIFEST + 1)
                    if len(raw) > MAX_MANIFEST:
                        raise UnsafeArchiveError(f"{MANIFEST_NAME} over {MAX_MANIFEST} bytes")
    except (*CORRUPT_ERRORS, OSError, UnsafeArchiveError) as exc:
        raise ResultsError(f"archive {path.name} is damaged or unsafe: {exc}") from exc
    if raw is None:
        raise ResultsError(f"archive has no {MANIFEST_NAME}")
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ResultsError(f"{MANIFEST_NAME} is not valid JSON: {exc}") from None
        raise ResultsError(f"{MANIFEST_NAME} has an unexpected shape: {exc}") from None
    missing = expected_task_ids - {t.task_id for t in manifest.tasks}
    if missing:
        raise ResultsError(f"{MANIFEST_NAME} does not list task(s) {sorted(missing)}")
    return manifest


def summarise(run: RunOut, manifest: Manifest, final: Path) -> Outcome:
    per_type: dict[tuple[str, str, str], TypeSummary] = {}
    for task in manifest.tasks:
        key = (task.provider, task.instance_type, task.label)
        entry = per_type.setdefault(key, TypeSummary(*key))
        if task.status == TaskStatus.completed:
            entry.completed += 1
        else:
            entry.failed += 1
        entry.directories.append(str(final / task.directory))
    counts = run.tasks.model_dump()
    removed = manifest.removed_tasks
    all_ok = (
        run.status == RunStatus.completed
        and removed == 0
        and all(t.status == TaskStatus.completed for t in manifest.tasks)
    )
    return Outcome(
        run_id=run.run_id,
        status=str(run.status),
        exit_code=EXIT_OK if all_ok else EXIT_INCOMPLETE,
        results_dir=str(final),
        tasks=counts,
        removed_tasks=removed,
        instance_types=sorted(per_type.values(), key=lambda s: (s.provider, s.alias)),
    )


def print_summary(console: Console, outcome: Outcome) -> None:
    table = Table(title=f"run {outcome.run_id}: {outcome.status}")
    for column in ("provider", "instance type", "alias", "completed", "failed"):
        table.add_column(column)
    table.add_column("results", overflow="fold")
    for item in outcome.instance_types:
        where = f"{_relative(outcome.results_dir)}/{_safe_glob(item)}"
        failed = f"[red]{item.failed}[/]" if item.failed else "0"
        table.add_row(
            item.provider, item.instance_type, item.alias, str(item.completed), failed, where
        )
    console.print(table)
    if outcome.removed_tasks:
        console.print(f"{outcome.removed_tasks} pending task(s) were removed when the run stopped")
    console.print(f"results: {outcome.results_dir} (manifest.json lists every task)")


def _safe_glob(item: TypeSummary) -> str:
    names = {Path(d).name.rsplit("-", 1)[0] for d in item.directories}
    return f"{names.pop()}-*" if len(names) == 1 else "*"


def _relative(path: str | None) -> str:
    try:
        return str(Path(path or ".").relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write_report(console: Console, err: Console, results: Path, args: list[str]) -> None:
    """`cloudbench report` on the downloaded run, in its own process (components never
    import each other); a report that fails is a warning, the results are already safe."""
    command = [sys.executable, "-m", "cloudbench", "report", str(results), *args]
    try:
        # The report lays its table out for this console's width, not a pipe's.
        env = {**os.environ, "COLUMNS": str(console.width)}
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=REPORT_TIMEOUT, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        err.print(f"warning: no report: {exc}", markup=False, soft_wrap=True)
        return
    console.print(done.stdout.rstrip(), markup=False, highlight=False, soft_wrap=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        err.print(f"warning: no report: {last}", markup=False, highlight=False, soft_wrap=True)

"""Reading results folders: manifest.json + task folders (output.json, metadata.json).

Accepts manifest format 1 and 2, metadata format 1 to 3 (report/fields.py finds each fact
in every layout), and a bare ruby-bench output folder (one output*.json per task, no
manifest) such as a fixture. A task whose files are missing or damaged is excluded with
a one-line reason naming the file and the fix; the rest of the report stands.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloudbench.protocol import METADATA_VERSION, check_manifest_version
from cloudbench.report.errors import ReportInputError
from cloudbench.report.fields import fact
from cloudbench.report.stats import Array

logger = logging.getLogger(__name__)


@dataclass
class BenchResult:
    bench: Array  # post-warmup iteration times, seconds
    maxrss: int | None
    warmup: Array
    median: float = field(init=False)

    def __post_init__(self) -> None:
        # statistics.median: the same value as np.median, without its per-call overhead
        # (a large run has hundreds of thousands of results).
        self.median = float(statistics.median(self.bench.tolist()))


@dataclass
class TaskData:
    task_id: int
    run_id: int | None
    provider: str
    instance_type: str
    alias: str
    machine: str
    metadata: dict[str, Any]
    results: dict[str, dict[str, BenchResult]]  # executable → benchmark → result


@dataclass(frozen=True)
class Exclusion:
    task_id: int
    alias: str
    reason: str
    bad_input: bool = False  # a missing or damaged file (also said on the terminal)


@dataclass
class RunData:
    run_id: int | None
    path: Path
    aliases: list[str]
    tasks: list[TaskData] = field(default_factory=list)
    excluded: list[Exclusion] = field(default_factory=list)
    failed_benchmarks: list[Exclusion] = field(default_factory=list)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ReportInputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ReportInputError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


def _results(path: Path, metadata: dict[str, Any]) -> dict[str, dict[str, BenchResult]]:
    data = _read_json(path)
    raw = data.get("raw_data") if isinstance(data, dict) else None
    described = data.get("metadata") if isinstance(data, dict) else None
    if isinstance(described, dict) and not metadata.get("ruby_description"):
        # Older metadata lacks it; ruby-bench records `ruby -v` of the first executable.
        first = next(iter(described.values()), None)
        if isinstance(first, str):
            metadata["ruby_description"] = first
    if not isinstance(raw, dict):
        raise ReportInputError(f"{path}: no raw_data (not ruby-bench output)")
    try:
        return _parsed(raw)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ReportInputError(f"{path}: not ruby-bench's raw_data layout ({exc})") from None


def _parsed(raw: dict[str, Any]) -> dict[str, dict[str, BenchResult]]:
    out: dict[str, dict[str, BenchResult]] = {}
    for exe, benches in raw.items():
        for name, result in (benches or {}).items():
            bench = np.asarray(result.get("bench") or [], dtype=float)
            if bench.size == 0 or not np.all(np.isfinite(bench)) or np.any(bench <= 0):
                continue
            maxrss = result.get("maxrss")
            warmup = np.asarray(result.get("warmup") or [], dtype=float)
            rss = int(maxrss) if isinstance(maxrss, int | float) else None
            out.setdefault(exe, {})[name] = BenchResult(bench, rss, warmup)
    return out


def failed_checks(metadata: dict[str, Any]) -> list[str]:
    """Checks recorded as false (format 2); an absent check is not a failure."""
    checks = metadata.get("checks")
    if not isinstance(checks, dict):
        return []
    return sorted(k for k, v in checks.items() if v is False)


def machine_of(metadata: dict[str, Any], fallback: str) -> str:
    """The cloud's instance id (format 2/3: `instance.instance_id`), else the hostname."""
    for name in ("instance_id", "hostname"):
        value = fact(metadata, name)
        if isinstance(value, str) and value:
            return value
    return fallback


REFETCH = "restore the task folder from the run's results.tar.gz"


def _where(path: Path, run: RunData) -> str:
    """A task file as the user finds it: relative to the results folder when inside it."""
    return str(path.relative_to(run.path) if path.is_relative_to(run.path) else path)


def _task_metadata(folder: Path, run: RunData) -> dict[str, Any] | str:
    """The task's metadata.json, or why the task cannot be used (one line)."""
    metadata_path = folder / "metadata.json"
    where = _where(folder, run)
    if not metadata_path.is_file():
        return f"{where}/metadata.json missing: its machine and checks are unknown; {REFETCH}"
    try:
        metadata = _read_json(metadata_path)
    except ReportInputError as exc:
        return f"{where}/metadata.json{str(exc).removeprefix(str(metadata_path))}; {REFETCH}"
    if not isinstance(metadata, dict):
        return f"{where}/metadata.json: not a JSON object; {REFETCH}"
    version = metadata.get("format_version", 1)
    if isinstance(version, int) and version > METADATA_VERSION:
        return (
            f"{where}/metadata.json: format_version {version} is newer than this "
            f"cloudbench reads ({METADATA_VERSION}); upgrade cloudbench"
        )
    return metadata


def _task(run: RunData, entry: dict[str, Any]) -> TaskData | None:
    task_id, alias = int(entry["task_id"]), str(entry.get("alias") or entry["instance_type"])
    folder = run.path / str(entry.get("directory", ""))
    status, error = entry.get("status"), entry.get("error") or {}
    output = folder / "output.json"
    partial = status == "failed" and error.get("type") == "benchmark_failed" and output.is_file()
    if status != "completed" and not partial:
        reason = f"task {status}: {error.get('type') or 'unknown'}: {error.get('message') or ''}"
        run.excluded.append(Exclusion(task_id, alias, reason.strip().rstrip(":")[:500]))
        return None
    if not output.is_file():
        run.excluded.append(Exclusion(task_id, alias, "no output.json in the results"))
        return None
    metadata = _task_metadata(folder, run)
    if isinstance(metadata, str):
        run.excluded.append(Exclusion(task_id, alias, metadata, bad_input=True))
        return None
    failed = failed_checks(metadata)
    if failed:
        run.excluded.append(Exclusion(task_id, alias, f"checks failed: {', '.join(failed)}"))
        return None
    try:
        results = _results(output, metadata)
    except ReportInputError as exc:
        reason = f"{_where(output, run)}{str(exc).removeprefix(str(output))}; {REFETCH}"
        run.excluded.append(Exclusion(task_id, alias, reason, bad_input=True))
        return None
    for exe, names in (metadata.get("failed_benchmarks") or {}).items():
        for name in names:
            run.failed_benchmarks.append(
                Exclusion(task_id, alias, f"benchmark {name} failed ({exe})")
            )
    return TaskData(
        task_id=task_id,
        run_id=run.run_id,
        provider=str(entry.get("provider", "local")),
        instance_type=str(entry["instance_type"]),
        alias=alias,
        machine=machine_of(metadata, f"task-{task_id}"),
        metadata=metadata,
        results=results,
    )


def _bare_folder(path: Path) -> RunData:
    outputs = sorted(p for p in path.glob("*.json") if p.name != "metadata.json")
    outputs = [p for p in outputs if "raw_data" in p.read_text(encoding="utf-8", errors="replace")]
    if not outputs:
        raise ReportInputError(
            f"{path}: no manifest.json and no ruby-bench output (expected results/<run-id>/)"
        )
    alias = path.name or "results"
    run = RunData(None, path, [alias])
    for i, output in enumerate(outputs, start=1):
        # Each output file is one ruby-bench process; the machine is unknown: one machine.
        metadata: dict[str, Any] = {}
        results = _results(output, metadata)
        run.tasks.append(TaskData(i, None, "local", alias, alias, "unknown", metadata, results))
    return run


def load_run(path: Path) -> RunData:
    if not path.is_dir():
        raise ReportInputError(f"{path}: not a directory (expected results/<run-id>/)")
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        return _bare_folder(path)
    manifest = _read_json(manifest_path)
    entries = manifest.get("tasks") if isinstance(manifest, dict) else None
    if not isinstance(entries, list):
        raise ReportInputError(f"{manifest_path}: no 'tasks' list (not a cloudbench manifest)")
    try:  # 1 and 2 read alike here (2 only adds attempts); a newer one may mean otherwise
        check_manifest_version(manifest.get("format_version", 1))
    except ValueError as exc:
        raise ReportInputError(f"{manifest_path}: {exc}") from None
    aliases: list[str] = []
    for entry in entries:
        alias = str(entry.get("alias") or entry.get("instance_type"))
        if alias not in aliases:
            aliases.append(alias)
    run = RunData(manifest.get("run_id"), path, aliases)
    for entry in entries:
        try:
            task = _task(run, entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportInputError(f"{manifest_path}: task entry malformed ({exc})") from None
        if task is not None:
            run.tasks.append(task)
    return run

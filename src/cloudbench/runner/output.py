"""ruby-bench's command line and output contract: progress lines, result files, failures."""

from __future__ import annotations

import json
import math
import re
import shlex
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudbench.protocol import BenchmarkSettings

# `--interleave` names the executable: `Running benchmark "fib" [yjit] (1/3)`.
PROGRESS_RE = re.compile(
    r'^Running benchmark "(?P<name>[^"]+)"(?: \[(?P<exe>[^\]]+)\])? \((?P<i>\d+)/(?P<n>\d+)\)\s*$'
)
# The summary section; "Failed benchmarks: 2" (with a count) is a different, earlier line.
FAILED_HEADER = "Failed benchmarks:"
FAILED_ENTRY_RE = re.compile(r"^\s+(?P<exe>[^:\s][^:]*):\s*(?P<names>.*)$")

# The prefix ruby-bench gets via --out-name: it writes OUT_NAME.{json,csv,txt}.
OUT_NAME = "output"


@dataclass(frozen=True)
class ProgressLine:
    name: str
    index: int
    total: int
    executable: str | None = None  # only in --interleave lines


def parse_progress_line(line: str) -> ProgressLine | None:
    match = PROGRESS_RE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    return ProgressLine(match["name"], int(match["i"]), int(match["n"]), match["exe"])


class ProgressTracker:
    """Turns the stream of progress lines into (current benchmark, percent done).

    ruby-bench runs every benchmark for the first executable, then every one for the next,
    restarting the (i/N) count, so the percentage spans all executables; with
    `--interleave` each (i/N) comes once per executable in a row instead.
    """

    def __init__(self, executables: int = 1) -> None:
        self.executables = max(1, executables)
        self._lock = threading.Lock()
        self._pass = 0
        self._last_index = 0
        self._done = 0
        self.current: str | None = None
        self.percent: float = 0.0
        self._base, self._share = 0.0, 1.0  # this process's part of the task

    def restart(self, executables: int, base: float, share: float) -> None:
        """A new ruby-bench process (runner/alternate.py) for `executables`, covering the
        fraction `share` of the task after the fraction `base` already done."""
        with self._lock:
            self.executables = max(1, executables)
            self._pass = self._last_index = self._done = 0
            self._base, self._share = base, share
            self.percent = round(100.0 * base, 1)

    def feed(self, line: str) -> bool:
        """Consume one output line; True when it moved the progress."""
        progress = parse_progress_line(line)
        if progress is None:
            return False
        with self._lock:
            total = self.executables * progress.total
            if progress.executable is not None:  # interleaved: one line per run
                done = self._done
                self._done += 1
            else:
                if progress.index <= self._last_index:
                    self._pass = min(self._pass + 1, self.executables - 1)
                self._last_index = progress.index
                done = self._pass * progress.total + progress.index - 1
            self.current = progress.name
            part = min(done, total) / total if total else 0.0
            self.percent = round(100.0 * (self._base + self._share * part), 1)
        return True

    def snapshot(self) -> tuple[str | None, float]:
        with self._lock:
            return self.current, self.percent


def parse_failed_benchmarks(lines: Iterable[str]) -> dict[str, list[str]]:
    """The `Failed benchmarks:` section at the end of stdout: {executable: [names]}."""
    failed: dict[str, list[str]] = {}
    in_section = False
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line.strip() == FAILED_HEADER:
            in_section = True
            continue
        if not in_section:
            continue
        match = FAILED_ENTRY_RE.match(line)
        if match is None:
            in_section = False
            continue
        names = [n.strip() for n in match["names"].split(",") if n.strip()]
        failed.setdefault(match["exe"].strip(), []).extend(names)
    return failed


def read_failed_benchmarks(log_path: Path) -> dict[str, list[str]]:
    if not log_path.exists():
        return {}
    with log_path.open(encoding="utf-8", errors="replace") as fh:
        return parse_failed_benchmarks(fh)


class ResultFormatError(ValueError):
    pass


@dataclass
class ResultSummary:
    executables: dict[str, str]  # exe name -> `ruby -v` output
    benchmarks: dict[str, list[str]] = field(default_factory=dict)  # exe -> benchmark names


def read_result_json(path: Path) -> ResultSummary:
    """Read and sanity-check output.json: {"metadata": {exe: desc}, "raw_data": {...}}."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultFormatError(f"{path.name}: unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise ResultFormatError(f"{path.name}: top level is not an object")
    metadata, raw = data.get("metadata"), data.get("raw_data")
    if not isinstance(metadata, dict) or not isinstance(raw, dict):
        raise ResultFormatError(f"{path.name}: missing metadata/raw_data objects")
    summary = ResultSummary(executables={str(k): str(v) for k, v in metadata.items()})
    for exe, benches in raw.items():
        if not isinstance(benches, dict):
            raise ResultFormatError(f"{path.name}: raw_data[{exe!r}] is not an object")
        for name, result in benches.items():
            if not isinstance(result, dict) or not isinstance(result.get("bench"), list):
                raise ResultFormatError(f"{path.name}: raw_data[{exe!r}][{name!r}] has no bench")
        summary.benchmarks[str(exe)] = sorted(benches)
    return summary


def missing_benchmarks(requested: list[str], summary: ResultSummary) -> list[str]:
    """Requested names with no result for some executable (ruby-bench matches prefixes)."""
    missing = []
    for name in requested:
        for ran in summary.benchmarks.values():
            if not any(b == name or b.startswith(name) for b in ran):
                missing.append(name)
                break
    return missing


def executable_specs(settings: BenchmarkSettings, ruby: str) -> list[str]:
    """`-e NAME::COMMAND` values: the interpreter and/or YJIT of the given Ruby."""
    specs = []
    command = shlex.quote(ruby)  # ruby-bench shell-splits the part after `::`
    for column in settings.columns():
        specs.append(" ".join([f"{column.name}::{command}", *column.flags]))
    return specs


def build_command(
    settings: BenchmarkSettings,
    out_prefix: str,
    ruby: str = "ruby",
    executables: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """Arguments after `run_benchmarks.rb`, and extra environment for it.

    Names are positional filters and categories go to --category; ruby-bench runs the
    benchmarks that match both. --no-pinning: we pin the whole run ourselves (cpuset or
    taskset) and ruby-bench's own choice of CPU may lie outside our set.
    """
    args = ["--no-sudo", "--no-pinning", f"--out-name={out_prefix}"]
    env: dict[str, str] = {}
    for spec in executables or executable_specs(settings, ruby):
        args.extend(["-e", spec])
    if settings.warmup_iterations is not None:
        args.append(f"--warmup={settings.warmup_iterations}")
    if settings.bench_iterations is not None:
        args.append(f"--bench={settings.bench_iterations}")
    if settings.min_bench_time is not None:
        # No flag for it; the harness reads the variable (--bench would default it to 0).
        # The harnesses parse it with Integer(), which rejects "1.5": round a minimum up.
        env["MIN_BENCH_TIME"] = str(math.ceil(settings.min_bench_time))
    if settings.categories:
        args.append("--category=" + ",".join(settings.categories))
    args.extend(settings.extra_args)
    args.extend(settings.names)
    return args, env


class Timeline:
    """Per-benchmark start/finish times from the progress lines (the next one, or the end
    of the process, finishes the previous benchmark)."""

    def __init__(self, executables: Sequence[str]) -> None:
        self.executables = list(dict.fromkeys(executables)) or ["?"]
        self._lock = threading.Lock()
        self._pass = 0
        self._last_index = 0
        self.entries: list[dict[str, Any]] = []

    def feed(self, line: str, now: str) -> None:
        progress = parse_progress_line(line)
        if progress is None:
            return
        with self._lock:
            executable = progress.executable
            if executable is None:
                if progress.index <= self._last_index:
                    self._pass = min(self._pass + 1, len(self.executables) - 1)
                self._last_index = progress.index
                executable = self.executables[self._pass]
            self._finish(now)
            self.entries.append(
                {
                    "executable": executable,
                    "benchmark": progress.name,
                    "started_at": now,
                    "finished_at": None,
                }
            )

    def restart(self, executables: Sequence[str]) -> None:
        """A new ruby-bench process (runner/alternate.py) for these executables: its
        progress counts start again; the entries so far stay."""
        with self._lock:
            self.executables = list(dict.fromkeys(executables)) or ["?"]
            self._pass, self._last_index = 0, 0

    def _finish(self, now: str) -> None:
        if self.entries and self.entries[-1]["finished_at"] is None:
            self.entries[-1]["finished_at"] = now

    def close(self, now: str) -> list[dict[str, Any]]:
        with self._lock:
            self._finish(now)
            return [dict(e) for e in self.entries]

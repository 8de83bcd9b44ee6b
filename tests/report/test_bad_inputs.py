"""Bad inputs: one line naming the file and the fix; only the affected task is excluded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cloudbench.report import build_report
from tests.report.synth import SynthTask, write_run


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudbench", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _three(tmp_path: Path) -> Path:
    tasks = [SynthTask(i, "a", f"m{i}", {"interp": {"fib": [1.0 + i / 10] * 3}}) for i in (1, 2, 3)]
    return write_run(tmp_path, 1, tasks)


def _one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    for needle in needles:
        assert needle in done.stderr, done.stderr


def test_prices_file_not_utf8(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_bytes(
        b"provider,instance_type,region,usd_per_hour\naws,a,,0,1\n" + b"aws,b,,\xff\xfe0.2\n"
    )
    done = _cli(str(_three(tmp_path)), "--prices", str(prices), "--offline")
    _one_line_error(done, str(prices), "UTF-8")


def test_config_not_json(tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text('{"prices": {"a": 0.1,}\n')
    done = _cli(str(_three(tmp_path)), "--config", str(config), "--offline")
    _one_line_error(done, str(config), "not valid JSON", "line 1")


def test_task_without_metadata_is_excluded_not_a_new_machine(tmp_path: Path) -> None:
    run = _three(tmp_path)
    (run / "a-2" / "metadata.json").unlink()
    summary = build_report([run], offline=True).summary
    entry = summary["instance_types"][0]
    assert (entry["tasks"], entry["machines"]) == (2, 2)
    reason = {e["task_id"]: e["reason"] for e in summary["excluded"]}[2]
    assert "metadata.json" in reason and "a-2" in reason
    assert all(not m.startswith("task-") for m in summary["provenance"][0]["machines"])
    done = _cli(str(run), "--offline", "--out", str(tmp_path / "r"))
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "note: task 2 (a) excluded: a-2/metadata.json missing" in done.stdout
    assert "reference" in done.stdout  # the baseline's row: no interval


def test_one_corrupted_output_excludes_only_its_task(tmp_path: Path) -> None:
    run = _three(tmp_path)
    (run / "a-3" / "output.json").write_text('{"raw_data": {"interp": ')
    summary = build_report([run], offline=True).summary
    assert summary["instance_types"][0]["tasks"] == 2
    reason = {e["task_id"]: e["reason"] for e in summary["excluded"]}[3]
    assert "output.json" in reason and "not valid JSON" in reason


def test_corrupted_metadata_excludes_only_its_task(tmp_path: Path) -> None:
    run = _three(tmp_path)
    (run / "a-1" / "metadata.json").write_bytes(b"\xff{")
    summary = build_report([run], offline=True).summary
    assert summary["instance_types"][0]["tasks"] == 2
    assert "metadata.json" in {e["task_id"]: e["reason"] for e in summary["excluded"]}[1]


def test_different_benchmark_sets_said_plainly_without_library_warnings(tmp_path: Path) -> None:
    def tasks(alias: str, benches: dict[str, dict[str, list[float]]]) -> list[SynthTask]:
        return [SynthTask(i, alias, f"{alias}{i}", benches) for i in (1, 2, 3)]

    one = write_run(
        tmp_path,
        1,
        tasks("a", {"interp": {"fib": [1.0] * 3, "nbody": [2.0] * 3}, "yjit": {"fib": [0.5] * 3}}),
    )
    two = write_run(
        tmp_path,
        2,
        tasks("b", {"interp": {"fib": [1.1] * 3, "lee": [2.0] * 3}, "yjit": {"lee": [0.5] * 3}}),
    )
    done = _cli(str(one), str(two), "--offline", "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr + done.stdout, done.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    notes = " ".join(summary["notes"])
    assert "different benchmark sets" in notes and "nbody" in notes and "lee" in notes
    assert "different benchmark sets" in done.stdout

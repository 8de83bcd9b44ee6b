"""The report reads manifest format 1 (before attempts) and 2, and refuses a newer one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudbench.report.errors import ReportInputError
from cloudbench.report.load import load_run
from tests.report.synth import SynthTask, write_run


def _run(tmp_path: Path, version: int) -> Path:
    task = SynthTask(1, "m", "i-1", {"yjit": {"fib": [0.1, 0.1, 0.1]}})
    run = write_run(tmp_path, 7, [task])
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["format_version"] = version
    if version >= 2:
        manifest["tasks"][0].update(attempt=2, attempts=[{"attempt": 1, "outcome": "timeout"}])
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


@pytest.mark.parametrize("version", [1, 2, 3])
def test_formats_1_2_and_3_read(tmp_path: Path, version: int) -> None:
    run = load_run(_run(tmp_path, version))
    assert run.run_id == 7 and [t.task_id for t in run.tasks] == [1]


def test_a_newer_manifest_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportInputError, match=r"format_version 4 is newer.*upgrade cloudbench"):
        load_run(_run(tmp_path, 4))

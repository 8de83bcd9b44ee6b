"""The live progress at 80 columns, and an ETA before the first task ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from cloudbench.master.progress import eta, render
from cloudbench.protocol import RunOut


def _run(progress: float) -> RunOut:
    return RunOut.model_validate(
        {
            "run_id": 7,
            "status": "running",
            "ruby_version": "3.4.7",
            "per_instance_type": {"tasks": 4},
            "benchmarks": {},
            "created_at": datetime.now(UTC) - timedelta(seconds=100),
            "tasks": {"total": 8, "running": 2, "pending": 6},
            "instance_types": [
                {
                    "provider": "aws",
                    "instance_type": f"c{n}g.medium",
                    "alias": f"c{n}g.medium-graviton",
                    "counts": {"total": 4, "running": 1, "pending": 3},
                    "current_benchmarks": ["railsbench"],
                    "running_progress": progress,
                }
                for n in (7, 8)
            ],
        }
    )


def test_eta_from_running_tasks_progress() -> None:
    # Two tasks each half done after 100 s: 1 task's work per 100 s, 7 left.
    estimate = eta(_run(0.5))
    assert estimate is not None and 690 < estimate < 720
    assert eta(_run(0.0)) is None  # no work done yet: no guess


def test_progress_fits_80_columns_with_whole_names() -> None:
    console = Console(width=80, record=True, force_terminal=False)
    console.print(render(_run(0.5), [], 80))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "c7g.medium-graviton" in text and "c8g.medium-graviton" in text
    assert ("railsbench" in text and "ETA 11m" in text) or "ETA" in text, text

"""Memory beside speed from ruby-bench's real output.json (Ruby 3.1: maxrss, rss,
rss_samples, and yjit_stats with inline/outlined code size)."""

from __future__ import annotations

import json
from pathlib import Path

from cloudbench.protocol.executables import ExecutableSpec
from cloudbench.runner.columns import Column
from cloudbench.runner.memory import memory_facts

COLUMNS = [
    Column("interp", "3.1", ExecutableSpec(name="interp", jit="interp")),
    Column("yjit", "3.1", ExecutableSpec(name="yjit", jit="yjit")),
]


def test_real_output_gives_peak_rss_code_size_and_overhead(fixtures_dir: Path) -> None:
    data = json.loads((fixtures_dir / "output_001.json").read_text())
    memory = memory_facts(data, COLUMNS)
    raw = data["raw_data"]
    yjit, interp = memory["yjit"], memory["interp"]
    assert yjit["peak_rss_bytes"] == max(r["maxrss"] for r in raw["yjit"].values())
    fib = yjit["benchmarks"]["fib"]
    assert fib["jit_code"] == raw["yjit"]["fib"]["yjit_stats"]  # both sizes, as recorded
    assert fib["rss_samples_max_bytes"] == max(raw["yjit"]["fib"]["rss_samples"])
    assert interp["benchmarks"]["fib"]["jit_code"] == {}
    overhead = yjit["overhead_vs_interp"]
    assert overhead["vs"] == "interp" and "overhead_vs_interp" not in interp
    expected = raw["yjit"]["fib"]["maxrss"] / raw["interp"]["fib"]["maxrss"]
    assert overhead["maxrss_ratio_by_benchmark"]["fib"] == round(expected, 4)
    assert overhead["peak_rss_extra_bytes"] == yjit["peak_rss_bytes"] - interp["peak_rss_bytes"]
    assert memory_facts({"raw_data": "x"}, COLUMNS) == {}

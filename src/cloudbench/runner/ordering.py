"""The order a task runs its benchmarks in: executables interleaved, benchmarks shuffled.

Drift of a machine during a task (heat, a neighbour, turbo budget) must not fall on one
executable: ruby-bench's own `--interleave` (at the pinned commit 09b76c8b and later) runs
every benchmark on each executable in turn, reversing the executables' order on every
other benchmark. ruby-bench has no option to shuffle the benchmarks, so the task starts
it through a short prelude (`ruby -e PRELUDE -- SEED run_benchmarks.rb ARGS`) that
shuffles `BenchmarkSuite#benchmarks` with the task's seed and says so on stdout; a
ruby-bench without that class runs in its own order and says that instead. The order
that really ran is read back from the progress lines (metadata.json `benchmark_order`).

Several Rubies in containers cannot share one process (an image holds one Ruby), so the
task alternates them by benchmark itself (runner/alternate.py): a listing prelude asks
the suite which benchmarks its filters select (`BenchmarkSuite#benchmarks`, so names,
prefixes, regexps and categories mean exactly what they mean to ruby-bench), then each
(Ruby, benchmark) runs in its own ruby-bench process, restricted to that one benchmark.
"""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

from cloudbench.protocol import BenchmarkSettings

SHUFFLED = "cloudbench: benchmark order shuffled with seed "
NOT_SHUFFLED = "cloudbench: benchmark order not shuffled"
PRELUDE = f"""\
seed = Integer(ARGV.shift); script = ARGV.shift
begin
  require File.realpath("lib/benchmark_suite.rb")
  BenchmarkSuite.instance_method(:benchmarks)
  BenchmarkSuite.prepend(Module.new do
    define_method(:benchmarks) {{ @cloudbench_order ||= super().shuffle(random: Random.new(seed)) }}
  end)
  puts "{SHUFFLED}#{{seed}}"
rescue LoadError, NameError, SystemCallError => e
  puts "{NOT_SHUFFLED} (#{{e.class}}: #{{e.message}})"
end
$stdout.flush
$0 = script
load File.expand_path(script)
"""
LISTED = "cloudbench: benchmarks selected: "
# ARGV: ONLY SCRIPT ARGS. ONLY "": print the selected names and stop before running any;
# else run only the benchmark named ONLY (exactly: no prefix or regexp matching).
PICK_PRELUDE = f"""\
only = ARGV.shift; script = ARGV.shift
require File.realpath("lib/benchmark_suite.rb")
BenchmarkSuite.prepend(Module.new do
  define_method(:benchmarks) do
    if only.empty?
      puts "{LISTED}#{{super().map(&:name).join(' ')}}"
      $stdout.flush
      exit!(0)
    end
    @cloudbench_only ||= super().select {{ |entry| entry.name == only }}
  end
end)
$0 = script
load File.expand_path(script)
"""


@lru_cache(maxsize=8)
def supports_interleave(path: Path) -> bool:
    """Whether this ruby-bench checkout has `--interleave` (its option parser names it)."""
    files = [path / "run_benchmarks.rb", *sorted((path / "lib").rglob("*.rb"))]
    for file in files:
        try:
            if '"--interleave"' in file.read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def new_seed() -> int:
    return secrets.randbelow(2**31)


def runner_arguments(
    args: list[str],
    settings: BenchmarkSettings,
    seed: int | None,
    interleave: bool,
    pick: str | None = None,
) -> list[str]:
    """What follows `ruby` to start ruby-bench: the prelude when shuffling (or listing or
    picking one benchmark: `pick`, "" lists), then its args."""
    if interleave and args.count("-e") > 1:  # several executables (columns)
        args = ["--interleave", *args]
    if pick is not None:
        return ["-e", PICK_PRELUDE, "--", pick, "run_benchmarks.rb", *args]
    if seed is None:
        return ["run_benchmarks.rb", *args]
    return ["-e", PRELUDE, "--", str(seed), "run_benchmarks.rb", *args]


def order_facts(
    command: list[str] | None,
    seed: int | None,
    output_lines: list[str],
    timeline: list[dict[str, Any]],
) -> dict[str, Any]:
    shuffled = any(line.startswith(SHUFFLED) for line in output_lines)
    why = next((line for line in output_lines if line.startswith(NOT_SHUFFLED)), None)
    return {
        "interleaved": bool(command and "--interleave" in command),
        "seed": seed,
        "shuffled": shuffled,
        "not_shuffled_because": re.sub(r"^[^(]*\(|\)$", "", why) if why else None,
        "ran": [[e["executable"], e["benchmark"]] for e in timeline],
    }

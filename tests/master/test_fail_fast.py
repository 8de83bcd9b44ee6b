"""Fail fast, say why (issue 13): `cloudbench run` stops when no runner of a type is left."""

from __future__ import annotations

import time

from tests.master.conftest import Harness, fake_config, last_json, needs_ruby

pytestmark = [needs_ruby]


def test_offline_run_stops_within_5s_of_the_last_runner_exiting(harness: Harness) -> None:
    url = "https://ruby-bench.invalid/ruby/ruby-bench.git"  # never resolves (RFC 2606)
    harness.start(harness.config(fake_config(["a"], 2, ["fib"])), "--ruby-bench", url)
    stderr = harness.tmp / "stderr"
    noticed = None
    while noticed is None:
        assert harness.proc is not None
        if "every runner of a has exited" in stderr.read_text():
            noticed = time.time()
        elif harness.proc.poll() is not None:
            break
        time.sleep(0.1)
    code, out, err = harness.wait(timeout=60)
    assert code == 1, err
    assert noticed is not None, err
    [line] = [line for line in err.splitlines() if "every runner of a has exited" in line]
    assert "with 2 task(s) left" in line
    assert f"error: cannot fetch ruby-bench from {url}: could not resolve host" in line
    assert "pass --ruby-bench PATH" in line and "Traceback" not in err
    [log] = list(harness.state.glob("runners/a-1/runner.log"))
    assert noticed - log.stat().st_mtime < 5, "the master took too long to notice"
    assert last_json(out)["exit_code"] == 1
    harness.assert_nothing_left()

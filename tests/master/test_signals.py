"""`cloudbench run` under repeated SIGTERM: teardown must not be cut short."""

from __future__ import annotations

import contextlib
import signal
import time

import pytest

from tests.master.conftest import Harness, fake_config, needs_ruby

pytestmark = [needs_ruby, pytest.mark.slow]


def test_sigterm_storm_still_tears_everything_down(harness: Harness) -> None:
    # A supervisor that keeps sending SIGTERM (systemd, CI timeouts, a user's `kill`
    # in a loop) must not leave the orchestrator or runners behind: a SIGTERM that
    # lands while teardown runs must make it hurry, not abort it.
    harness.start(harness.config(fake_config(["a"], 3, ["sleepy"])), FAKE_BENCH_SLEEP="60")
    run_id = harness.run_id()
    harness.wait_for(lambda: any(t["status"] == "running" for t in harness.tasks(run_id)))
    assert harness.proc is not None
    deadline = time.monotonic() + 60
    while "tearing down" not in harness.output() and time.monotonic() < deadline:
        harness.proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)
    for _ in range(10):  # more while teardown runs (it takes over a second)
        if harness.proc.poll() is None:
            harness.proc.send_signal(signal.SIGTERM)
        time.sleep(0.02)
    code, _out, err = harness.wait(timeout=30)
    time.sleep(1)  # let SIGKILLed children be reaped by init
    harness.assert_nothing_left()
    assert code == 130, err


def test_sigterm_on_a_terminal_does_not_wait_for_an_answer(harness: Harness) -> None:
    # SIGTERM is "Ctrl-C answered with yes": nobody is there to answer a prompt.
    import os
    import pty
    import subprocess
    import sys

    from tests.master.conftest import FAKE_SUITE

    config = harness.config(fake_config(["a"], 3, ["sleepy"]))
    controller, terminal = pty.openpty()
    command = [
        sys.executable,
        "-m",
        "cloudbench",
        "run",
        str(config),
        "--ruby-bench",
        str(FAKE_SUITE),
        "--executor",
        "host",
        "--slots",
        "1",
        "--state-dir",
        str(harness.state),
        "--results-dir",
        str(harness.results),
    ]
    out = (harness.tmp / "stderr").open("wb")
    harness.proc = subprocess.Popen(
        command,
        env=harness.env(FAKE_BENCH_SLEEP="60"),
        stdin=terminal,
        stdout=terminal,
        stderr=out,
        cwd=harness.tmp,
    )
    os.close(terminal)
    os.set_blocking(controller, False)
    try:
        run_id = harness.run_id()
        harness.wait_for(lambda: any(t["status"] == "running" for t in harness.tasks(run_id)))
        harness.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while harness.proc.poll() is None and time.monotonic() < deadline:
            # Keep the terminal drained; EIO once the master has closed its side (exited).
            with contextlib.suppress(BlockingIOError, OSError):
                os.read(controller, 65536)
            time.sleep(0.1)
        assert harness.proc.poll() == 2, "master still waiting after SIGTERM"
    finally:
        os.close(controller)

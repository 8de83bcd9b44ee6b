"""The twin VM's serial console (tests/twin/vm/serial) on this machine: a line written to
the port just before the power off (init's SIGTERM) still reaches the console, as on a
real serial port. The CI saw a VM's last console lines (its boot failure) lost when the
VM powered off right after writing them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

SERIAL = Path(__file__).resolve().parent / "vm" / "serial"


def test_what_was_written_before_the_power_off_reaches_the_console(tmp_path: Path) -> None:
    port, console = tmp_path / "ttyS0", tmp_path / "console.log"
    with console.open("ab") as out:
        proc = subprocess.Popen(["python3", str(SERIAL), str(port)], stdout=out)
    try:
        deadline = time.monotonic() + 10
        while not port.exists():
            assert time.monotonic() < deadline and proc.poll() is None, console.read_text()
            time.sleep(0.05)
        # The console has not read it yet (stopped, as on a busy machine) when init
        # powers off: SIGTERM first, then it runs again.
        proc.send_signal(signal.SIGSTOP)
        fd = os.open(port, os.O_WRONLY | os.O_NOCTTY)
        os.write(fd, b"cloudbench i-0: boot failed at step 'x' (exit 100); last lines:\n")
        os.close(fd)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    text = console.read_text()
    assert text.endswith("cloudbench i-0: boot failed at step 'x' (exit 100); last lines:\n"), text

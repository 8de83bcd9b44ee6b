"""Machine-wide CPU leases: real flocks in a real directory, waiters in real threads and
processes (a flock is per open file, so two threads with their own files conflict as two
processes do)."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cloudbench.platform.cpulease import CpuLeases, Lease, read_history


def _holder(name: str) -> dict[str, object]:
    return {"lease_id": name, "task_id": int(name[-1]) if name[-1].isdigit() else None}


def _never() -> bool:
    return False


def test_waiters_take_turns_in_arrival_order_and_the_record_says_who_held_what(
    tmp_path: Path,
) -> None:
    leases = CpuLeases(tmp_path, poll=0.02)
    first = leases.acquire([0], _holder("a1"), _never)
    assert first is not None and leases.holders([0])[0]["lease_id"] == "a1"
    order: list[str] = []
    got: dict[str, Lease] = {}

    def wait_for(name: str) -> None:
        lease = leases.acquire([0], _holder(name), _never)
        assert lease is not None
        order.append(name)
        got[name] = lease

    threads = []
    for name in ("b1", "c1"):  # b queues before c
        threads.append(threading.Thread(target=wait_for, args=(name,)))
        threads[-1].start()
        time.sleep(0.2)
    # CPU 1 is not theirs: a waiter for it does not queue behind them.
    other = leases.acquire([1], _holder("d1"), _never)
    assert other is not None
    other.release()
    first.release()
    # a comes back for its next task while b holds the CPU: it waits behind c.
    again = threading.Thread(target=wait_for, args=("a2",))
    again.start()
    for name in ("b1", "c1", "a2"):
        deadline = time.monotonic() + 10
        while name not in got and time.monotonic() < deadline:
            time.sleep(0.02)
        got[name].release()
    for thread in [*threads, again]:
        thread.join(timeout=10)
    assert order == ["b1", "c1", "a2"]
    record = {e["lease_id"]: e for e in read_history(tmp_path)}
    assert set(record) == {"a1", "b1", "c1", "a2", "d1"}
    held = sorted((e["from"], e["to"]) for e in record.values() if e["cpus"] == [0])
    assert all(a_to <= b_from for (_f, a_to), (b_from, _t) in itertools.pairwise(held))
    # A task asks the record who overlapped it: the CPU-1 lease ran during a1's.
    overlapping = leases.record(record["a1"]["from"], record["a1"]["to"])
    assert {e["lease_id"] for e in overlapping} >= {"a1", "d1"}
    assert "b1" not in {e["lease_id"] for e in overlapping}


def test_a_killed_holder_frees_its_cpus_and_a_stopped_waiter_gives_up(tmp_path: Path) -> None:
    script = (
        "import sys, time; from pathlib import Path\n"
        "from cloudbench.platform.cpulease import CpuLeases\n"
        "lease = CpuLeases(Path(sys.argv[1])).acquire([3], {'lease_id': 'x'}, lambda: False)\n"
        "print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    leases = CpuLeases(tmp_path, poll=0.02)
    assert [h["lease_id"] for h in leases.holders([3])] == ["x"]
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    assert leases.acquire([3], _holder("y"), stop.is_set) is None  # held elsewhere: gave up
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert leases.holders([3]) == []  # its text is still in the file; its lock died
    lease = leases.acquire([3], _holder("z"), _never)
    assert lease is not None and lease.cpus == (3,)
    lease.release()
    assert not list((tmp_path / "queue").iterdir())  # no ticket left behind

"""Machine-wide CPU leases for tests that pin work to CPUs outside a runner.

Every cloudbench benchmark holds the leases of its CPUs (platform/cpulease.py), so runners
take turns. A test that runs an executor directly, or pins a busy loop, holds them too:
otherwise, to the runners of tests running in parallel, its work is someone's `taskset`
on their CPUs, and their tasks are rightly excluded (checks.own_core false).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

from cloudbench.platform.cpulease import CpuLeases


@contextlib.contextmanager
def leased(cpus: Iterable[int], why: str) -> Iterator[None]:
    holder = {"lease_id": f"test:{why}", "pid": os.getpid()}
    lease = CpuLeases().acquire(cpus, holder, lambda: False)
    assert lease is not None
    try:
        yield
    finally:
        lease.release()

"""Which tasks ran at the same time on this machine, recorded per task."""

from __future__ import annotations

import threading


class Concurrency:
    """Each task learns every (slot, task) that was running at any moment of its run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, int] = {}  # slot index -> task id
        self._overlaps: dict[tuple[int, int], set[tuple[int, int]]] = {}

    def begin(self, slot: int, task_id: int) -> None:
        me = (slot, task_id)
        with self._lock:
            mine = self._overlaps.setdefault(me, set())
            for other in self._active.items():
                mine.add(other)
                self._overlaps.setdefault(other, set()).add(me)
            self._active[slot] = task_id

    def end(self, slot: int, task_id: int) -> list[tuple[int, int]]:
        """(slot, task id) pairs that overlapped this task, sorted."""
        with self._lock:
            if self._active.get(slot) == task_id:
                del self._active[slot]
            return sorted(self._overlaps.pop((slot, task_id), set()))

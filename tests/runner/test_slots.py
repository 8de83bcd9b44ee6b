from __future__ import annotations

from pathlib import Path

import pytest

from cloudbench.runner.slots import cpu_groups, make_slots, physical_cores


def _topology(root: Path, siblings: dict[int, str]) -> Path:
    for cpu, text in siblings.items():
        topo = root / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "thread_siblings_list").write_text(text + "\n")
    return root


def test_physical_cores_groups_hyperthreads(tmp_path: Path) -> None:
    sysfs = _topology(tmp_path, {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"})
    assert physical_cores([0, 1, 2, 3], sysfs) == [(0, 2), (1, 3)]


def test_cpu_groups() -> None:
    assert cpu_groups("auto", [0, 1, 2]) == [(0,), (1,), (2,)]
    assert cpu_groups(2, [0, 1, 2, 3, 4]) == [(0, 1, 2), (3, 4)]
    with pytest.raises(ValueError):
        cpu_groups(5, [0, 1])


def test_runner_ids_unique() -> None:
    slots = make_slots("auto", host="box.example")
    ids = [s.runner_id for s in slots]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(f"box-{n}-") for n, i in enumerate(ids))

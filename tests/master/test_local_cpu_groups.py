"""The local provider splits a machine between runners by whole cores (fake sysfs trees)."""

from __future__ import annotations

from pathlib import Path

from cloudbench.master.providers.local import cpu_groups
from cloudbench.runner.slots import plan_slots


def _sysfs(root: Path, siblings: dict[int, str], packages: dict[int, int] | None = None) -> Path:
    for cpu, text in siblings.items():
        topo = root / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "core_cpus_list").write_text(text + "\n")
        (topo / "physical_package_id").write_text(f"{(packages or {}).get(cpu, 0)}\n")
    return root


def test_no_smt_groups_are_disjoint_and_cover_the_machine(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, {c: str(c) for c in range(5)})
    assert cpu_groups([0, 1, 2, 3, 4], 2, sysfs) == [[0, 1, 2], [3, 4]]
    assert cpu_groups([0, 1], 2, sysfs) == [[0], [1]]
    assert cpu_groups([0, 1], 1, sysfs) == [None]  # one runner: the whole machine, no taskset
    assert cpu_groups([0], 3, sysfs) == [None, None, None]  # cannot split: they take turns


def test_one_core_two_threads_is_never_split(tmp_path: Path) -> None:
    # 2 vCPUs = 1 core x 2 threads (c7i.large): two runners would co-run on siblings.
    sysfs = _sysfs(tmp_path, {0: "0-1", 1: "0-1"})
    assert cpu_groups([0, 1], 2, sysfs) == [None, None]


def test_two_socket_48_threads_hands_out_whole_cores(tmp_path: Path) -> None:
    # Siblings are k and k+24, so contiguous CPU numbers would split every core.
    siblings = {k: f"{k % 24},{k % 24 + 24}" for k in range(48)}
    packages = {k: (k % 24) // 12 for k in range(48)}
    sysfs = _sysfs(tmp_path, siblings, packages)
    groups = cpu_groups(list(range(48)), 2, sysfs)
    assert groups == [[*range(12), *range(24, 36)], [*range(12, 24), *range(36, 48)]]
    three = cpu_groups(list(range(48)), 3, sysfs)
    for group in three:
        assert group is not None and len(group) == 16
        assert all((c + 24) % 48 in group for c in group)  # each core's sibling comes along
    # The runner given such a group then finds its siblings idle (no foreign threads).
    first = three[0]
    assert first is not None
    plan = plan_slots("physical", "auto", cpus=first, sysfs=sysfs)
    assert not any(plan.foreign)
    assert len(plan.groups) == 7  # 8 cores, one kept for housekeeping


def test_five_cores_of_two_threads_split_unevenly_but_whole(tmp_path: Path) -> None:
    siblings = {k: f"{k % 5},{k % 5 + 5}" for k in range(10)}
    sysfs = _sysfs(tmp_path, siblings)
    groups = cpu_groups(list(range(10)), 2, sysfs)
    assert groups == [[0, 1, 2, 5, 6, 7], [3, 4, 8, 9]]

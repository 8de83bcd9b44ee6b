"""Slot planning on fake sysfs trees (the layouts cloud machines really have)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudbench.protocol import SlotMode
from cloudbench.runner.slots import (
    make_slots,
    parse_cpu_list,
    plan_slots,
    read_cores,
    topology_facts,
)


def physical_cores(cpus: list[int], sysfs: Path) -> list[tuple[int, ...]]:
    """Groups of hyperthread siblings among `cpus`, one group per physical core."""
    return [core.threads for core in read_cores(cpus, sysfs)]


def _sysfs(
    root: Path,
    siblings: dict[int, str],
    packages: dict[int, int] | None = None,
    name: str = "core_cpus_list",
) -> Path:
    for cpu, text in siblings.items():
        topo = root / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / name).write_text(text + "\n")
        (topo / "physical_package_id").write_text(f"{(packages or {}).get(cpu, 0)}\n")
    return root


def _two_socket_48(root: Path) -> Path:
    """2 sockets x 12 cores x 2 threads; Linux numbers siblings k and k+24 (e.g. c5.12xlarge)."""
    siblings = {k: f"{k % 24},{k % 24 + 24}" for k in range(48)}
    packages = {k: (k % 24) // 12 for k in range(48)}
    return _sysfs(root, siblings, packages)


def test_cpu_list_syntax() -> None:
    assert parse_cpu_list("0-2,8,10-11\n") == {0, 1, 2, 8, 10, 11}


def test_one_vcpu(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, {0: "0"})
    plan = plan_slots("physical", cpus=[0], sysfs=sysfs)
    assert plan.groups == [(0,)] and plan.siblings == [(0,)]
    assert not plan.housekeeping_isolated and plan.housekeeping == (0,)
    assert plan.note and "one physical core" in plan.note
    assert topology_facts(plan)["housekeeping"] == {
        "cpus": "0",
        "isolated": False,
        "note": plan.note,
        "covers": "the runner process and its threads",
    }


def test_two_vcpus_one_core_two_threads(tmp_path: Path) -> None:
    """c7i.large: one core, two hyperthreads. physical = one benchmark, the sibling idle."""
    sysfs = _sysfs(tmp_path, {0: "0-1", 1: "0-1"})
    assert physical_cores([0, 1], sysfs) == [(0, 1)]
    plan = plan_slots("physical", cpus=[0, 1], sysfs=sysfs)
    assert plan.groups == [(0,)] and plan.siblings == [(0, 1)]
    assert plan.sharing(0) == []
    assert plan_slots("auto", cpus=[0, 1], sysfs=sysfs).groups == [(0,)]  # alias
    logical = plan_slots("logical", cpus=[0, 1], sysfs=sysfs)
    assert logical.mode is SlotMode.logical and logical.groups == [(0,), (1,)]
    assert logical.sharing(0) == [1] and logical.sharing(1) == [0]  # siblings co-run
    with pytest.raises(ValueError, match="2 slots requested but only 1 physical core"):
        plan_slots(2, cpus=[0, 1], sysfs=sysfs)  # N never splits a core
    assert plan_slots(1, cpus=[0, 1], sysfs=sysfs).groups == [(0, 1)]  # the whole core
    facts = topology_facts(plan)
    assert (facts["sockets"], facts["physical_cores"], facts["threads_per_core"]) == (1, 1, 2)


def test_two_socket_48_threads(tmp_path: Path) -> None:
    sysfs = _two_socket_48(tmp_path)
    cpus = list(range(48))
    cores = read_cores(cpus, sysfs)
    assert len(cores) == 24 and cores[5].threads == (5, 29) and cores[13].package == 1
    plan = plan_slots("physical", cpus=cpus, sysfs=sysfs)
    # The last core (23, 47) is kept for the runner; 23 slots, one thread each.
    assert plan.housekeeping == (23, 47) and plan.housekeeping_isolated
    assert plan.groups == [(k,) for k in range(23)]
    assert plan.siblings[5] == (5, 29)
    used = {c for g in plan.groups for c in g}
    assert not used & {k + 24 for k in range(24)}  # no benchmark on any sibling thread
    assert all(plan.sharing(i) == [] for i in range(len(plan.groups)))
    logical = plan_slots("logical", cpus=cpus, sysfs=sysfs)
    assert len(logical.groups) == 46 and logical.sharing(0) == [1]
    assert logical.groups[0] == (0,) and logical.groups[1] == (24,)
    # N hands out whole cores: 4 slots over the 23 free cores, siblings kept together.
    four = plan_slots(4, cpus=cpus, sysfs=sysfs)
    assert [len(g) for g in four.groups] == [12, 12, 12, 10]
    assert four.groups[0] == (0, 24, 1, 25, 2, 26, 3, 27, 4, 28, 5, 29)
    facts = topology_facts(plan)
    assert (facts["sockets"], facts["physical_cores"], facts["logical_cpus"]) == (2, 24, 48)
    assert (facts["slot_mode"], facts["slot_count"]) == ("physical", 23)


def test_housekeeping_choices(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, {c: str(c) for c in range(4)})  # Graviton-like: no SMT
    assert plan_slots("physical", "none", [0, 1, 2, 3], sysfs).groups == [(0,), (1,), (2,), (3,)]
    explicit = plan_slots("physical", "0", [0, 1, 2, 3], sysfs)
    assert explicit.housekeeping == (0,) and explicit.groups == [(1,), (2,), (3,)]
    # --slots N using every core: nothing left to reserve, so the runner shares (recorded).
    every = plan_slots(4, "auto", [0, 1, 2, 3], sysfs)
    assert not every.housekeeping_isolated and every.note and "every core" in every.note
    with pytest.raises(ValueError, match="may not use"):
        plan_slots("physical", "9", [0, 1, 2, 3], sysfs)
    with pytest.raises(ValueError, match="not N, physical, logical or auto"):
        plan_slots("half", cpus=[0, 1], sysfs=sysfs)


def test_old_kernels_thread_siblings_list(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}, name="thread_siblings_list")
    assert physical_cores([0, 1, 2, 3], sysfs) == [(0, 2), (1, 3)]


def test_runner_ids_unique(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, {c: str(c) for c in range(3)})
    slots = make_slots(plan_slots("physical", "none", [0, 1, 2], sysfs), host="box.example")
    ids = [s.runner_id for s in slots]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(f"box-{n}-") for n, i in enumerate(ids))


def test_siblings_outside_our_cpus_are_recorded(tmp_path: Path) -> None:
    """Two runners split by taskset into [0, 1] and [2, 3] on 2 cores x 2 threads (siblings
    k, k+2): each runner's slots have a sibling it cannot see work on."""
    sysfs = _sysfs(tmp_path, {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"})
    plan = plan_slots("physical", "none", cpus=[0, 1], sysfs=sysfs)
    assert plan.groups == [(0,), (1,)] and plan.foreign == [(2,), (3,)]
    whole = plan_slots("physical", "none", cpus=[0, 2], sysfs=sysfs)
    assert whole.groups == [(0,)] and whole.foreign == [()]

"""Nuke for the local provider: processes from session records, containers by label.

Same two-step shape as the AWS sweep (``plan`` lists and changes nothing, ``execute``
stops/removes and lists again), so the CLI treats providers alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psutil

from cloudbench.platform import containers
from cloudbench.platform.containers import ContainerInfo
from cloudbench.platform.processes import terminate
from cloudbench.platform.state import ProcRecord, Session, is_ours, load_sessions

logger = logging.getLogger(__name__)

GRACE = 10.0
ROLE_ORDER = ("master", "runner", "orchestrator")  # the master would restart the others


@dataclass(frozen=True)
class LocalProcess:
    session: Session
    record: ProcRecord

    def describe(self) -> str:
        run = f"run {self.session.run_id}" if self.session.run_id else "no run yet"
        label = f" {self.record.label}" if self.record.label else ""
        return f"{self.record.role}{label} (pid {self.record.pid}, {run})"


@dataclass
class LocalPlan:
    run_id: int | None
    processes: list[LocalProcess] = field(default_factory=list)
    containers: list[ContainerInfo] = field(default_factory=list)
    # Session files whose processes are all gone; removed by execute, not worth listing.
    stale: list[Session] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.processes and not self.containers

    def describe(self) -> list[str]:
        lines = [p.describe() for p in self.processes]
        lines += [
            f"container {c.name} ({c.id}, {c.status}, run {c.run_id})" for c in self.containers
        ]
        return lines


def plan_local(run_id: int | None = None) -> LocalPlan:
    plan = LocalPlan(run_id)
    for session in load_sessions():
        if run_id is not None and session.run_id != run_id:
            continue
        records = [session.master_record(), *session.processes]
        live = [LocalProcess(session, r) for r in records if is_ours(r) is not None]
        if live:
            plan.processes += live
        else:
            plan.stale.append(session)
    plan.processes.sort(key=lambda p: ROLE_ORDER.index(p.record.role))
    plan.containers = containers.list_ours(run_id)
    return plan


def execute_local(plan: LocalPlan, grace: float = GRACE) -> LocalPlan:
    """Stop the planned processes (role by role), remove containers; return what is left."""
    for role in ROLE_ORDER:
        procs: list[psutil.Process] = []
        for item in plan.processes:
            proc = is_ours(item.record) if item.record.role == role else None
            if proc is not None:
                procs.append(proc)
        if procs:
            logger.info("stopping %d %s process(es)", len(procs), role)
            terminate(procs, grace)
    # By label, not the planned list: a runner stopped above may have started its task's
    # container after plan_local listed them (nuke left such a container running).
    containers.remove_ours(plan.run_id)
    remaining = plan_local(plan.run_id)
    for session in remaining.stale:
        session.remove()
    remaining.stale = []
    return remaining

"""Machine endpoints: a runner VM reports its boot stage; master and dashboard read them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from cloudbench.orchestrator.api.deps import (
    AdminToken,
    AnyToken,
    RunIdPath,
    RunnerToken,
    SessionDep,
)
from cloudbench.orchestrator.api.responses import API
from cloudbench.orchestrator.archive_worker import schedule_archive
from cloudbench.orchestrator.db import machines as db_machines
from cloudbench.orchestrator.db import runs as db_runs
from cloudbench.orchestrator.db.models import Machine
from cloudbench.orchestrator.db.queue import finalize_if_done
from cloudbench.orchestrator.errors import Unprocessable
from cloudbench.protocol import (
    MachineList,
    MachineLost,
    MachineOut,
    MachineReleased,
    MachineReport,
)

router = APIRouter(tags=["machines"], responses=API)


def machine_out(machine: Machine) -> MachineOut:
    data = {c.key: getattr(machine, c.key) for c in Machine.__table__.columns}
    data["stages"] = data["stages"] or {}
    return MachineOut.model_validate(data)


@router.post("/runs/{run_id}/machines", response_model=MachineOut, dependencies=[RunnerToken])
def report_machine(run_id: RunIdPath, body: MachineReport, session: SessionDep) -> MachineOut:
    """Record a machine's stage (any run state: a late error report still explains)."""
    for name in ("message", "log_tail", "host"):
        if "\x00" in (getattr(body, name) or ""):
            raise Unprocessable(f"{name}: NUL characters are not allowed")
    run = db_runs.require_run(session=session, external_id=run_id)
    machine = db_machines.record_report(session=session, run=run, report=body)
    session.commit()
    session.refresh(machine)
    return machine_out(machine)


@router.get("/runs/{run_id}/machines", response_model=MachineList, dependencies=[AnyToken])
def get_machines(run_id: RunIdPath, session: SessionDep) -> MachineList:
    run = db_runs.require_run(session=session, external_id=run_id)
    found = db_machines.list_machines(session=session, run=run)
    now = db_machines.database_now(session=session)
    return MachineList(run_id=run_id, now=now, machines=[machine_out(m) for m in found])


InstancePath = Annotated[str, Path(min_length=1, max_length=200)]


@router.post(
    "/runs/{run_id}/machines/{instance_id}/lost",
    response_model=MachineReleased,
    dependencies=[AdminToken],
)
def machine_lost(
    run_id: RunIdPath,
    instance_id: InstancePath,
    body: MachineLost,
    request: Request,
    session: SessionDep,
) -> MachineReleased:
    """The master saw this machine fail or vanish: its tasks go to another machine now
    (as `instance_terminated`) instead of after the heartbeat timeout."""
    run = db_runs.require_run(session=session, external_id=run_id)
    retried, failed = db_machines.release_lost(
        session=session, run=run, instance_id=instance_id, reason=body.reason
    )
    finalized = bool(failed) and finalize_if_done(session=session, run_pk=run.id)
    session.commit()
    if finalized:
        schedule_archive(request.app)
    return MachineReleased(instance_id=instance_id, retried=retried, failed=failed)

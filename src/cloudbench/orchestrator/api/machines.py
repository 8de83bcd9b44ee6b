"""Machine endpoints: a runner VM reports its boot stage; master and dashboard read them."""

from __future__ import annotations

from fastapi import APIRouter

from cloudbench.orchestrator.api.deps import AnyToken, RunIdPath, RunnerToken, SessionDep
from cloudbench.orchestrator.db import machines as db_machines
from cloudbench.orchestrator.db import runs as db_runs
from cloudbench.orchestrator.db.models import Machine
from cloudbench.orchestrator.errors import Unprocessable
from cloudbench.protocol import MachineList, MachineOut, MachineReport

router = APIRouter(tags=["machines"])


def machine_out(machine: Machine) -> MachineOut:
    data = {c.key: getattr(machine, c.key) for c in Machine.__table__.columns}
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

"""Run endpoints: create (config-file shape), list, read, tasks, stop early."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import ValidationError

from cloudbench.orchestrator.api.deps import (
    AdminToken,
    AnyToken,
    RunIdPath,
    SessionDep,
    StorageDep,
)
from cloudbench.orchestrator.api.responses import API
from cloudbench.orchestrator.api.views import runs_out, task_out
from cloudbench.orchestrator.archive_worker import schedule_archive
from cloudbench.orchestrator.db import attempts
from cloudbench.orchestrator.db import runs as db_runs
from cloudbench.orchestrator.errors import BadRequest
from cloudbench.protocol import (
    RunCreated,
    RunList,
    RunOut,
    RunSpec,
    StopRequest,
    TaskBrief,
    TaskList,
    describe,
)

router = APIRouter(tags=["runs"], responses=API)


def parse_spec(body: Any) -> RunSpec:
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object in the config-file shape")
    try:
        return RunSpec.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(describe(exc.errors())) from None


@router.post("/runs", status_code=201, response_model=RunCreated, dependencies=[AdminToken])
def create_run(response: Response, session: SessionDep, body: Any = Body(...)) -> RunCreated:
    spec = parse_spec(body)
    run, created = db_runs.create_run(session=session, spec=spec)
    tasks = db_runs.list_tasks(session=session, run=run)
    session.commit()
    if not created:
        response.status_code = 200
    return RunCreated(
        run_id=run.external_id,
        tasks_created=len(tasks),
        tasks=[TaskBrief.model_validate(t, from_attributes=True) for t in tasks],
        ignored=spec.ignored,
    )


@router.get("/runs", response_model=RunList, dependencies=[AnyToken])
def list_runs(session: SessionDep, storage: StorageDep, limit: int = 50) -> RunList:
    runs = db_runs.list_runs(session=session, limit=max(1, min(limit, 500)))
    return RunList(runs=runs_out(session, runs, storage))


@router.get("/runs/{run_id}", response_model=RunOut, dependencies=[AnyToken])
def get_run(run_id: RunIdPath, session: SessionDep, storage: StorageDep) -> RunOut:
    run = db_runs.require_run(session=session, external_id=run_id)
    return runs_out(session, [run], storage)[0]


@router.get("/runs/{run_id}/tasks", response_model=TaskList, dependencies=[AnyToken])
def get_run_tasks(run_id: RunIdPath, session: SessionDep) -> TaskList:
    run = db_runs.require_run(session=session, external_id=run_id)
    tasks = db_runs.list_tasks(session=session, run=run)
    ended = attempts.history(session=session, run_pk=run.id)
    return TaskList(tasks=[task_out(t, run, ended.get(t.id)) for t in tasks])


@router.post("/runs/{run_id}/stop", response_model=RunOut, dependencies=[AdminToken])
def stop_run(
    run_id: RunIdPath,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    body: StopRequest | None = Body(default=None),
) -> RunOut:
    """No body: end the run early. A body: stop one instance type, the run goes on."""
    if body is not None:
        run, changed = db_runs.stop_group(
            session=session,
            external_id=run_id,
            provider=body.provider,
            alias=body.alias,
            reason=body.reason or "stopped by the master",
        )
    else:
        run, changed = db_runs.stop_run(session=session, external_id=run_id)
    session.commit()
    if changed:
        schedule_archive(request.app)
    return runs_out(session, [run], storage)[0]

"""Runner endpoints: claim, heartbeat, complete, fail, fresh upload URLs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from cloudbench.orchestrator.api.deps import (
    RunIdPath,
    RunnerToken,
    SessionDep,
    SettingsDep,
    StorageDep,
    TaskIdPath,
)
from cloudbench.orchestrator.api.responses import API
from cloudbench.orchestrator.api.views import task_out, task_out_from_row
from cloudbench.orchestrator.archive_worker import schedule_archive
from cloudbench.orchestrator.db import attempts, hot, queue
from cloudbench.orchestrator.db.models import Run, Task
from cloudbench.orchestrator.errors import Conflict, Unprocessable
from cloudbench.orchestrator.resultcheck import task_result_problem
from cloudbench.orchestrator.settings import OrchestratorSettings
from cloudbench.orchestrator.storage.base import Storage, error_key, result_key
from cloudbench.protocol import (
    AttemptOutcome,
    BenchmarkSettings,
    ClaimRequest,
    ClaimResponse,
    ClaimStatus,
    CompleteRequest,
    ErrorType,
    FailRequest,
    HeartbeatRequest,
    PresignedUrls,
    TaskAssignment,
    TaskOut,
    TaskStatus,
    UploadUrlsRequest,
)

router = APIRouter(tags=["tasks"], dependencies=[RunnerToken], responses=API)
RETRY_WAIT_SECONDS = 5


@contextmanager
def _closing(session: Session) -> Iterator[None]:
    """Close (rolling back what is open) in the route's own thread, locks and connection too.

    Left to the session dependency, the close waits for a free worker thread while it
    holds the run lock (a stale runner's 409 after lock_run) or a pooled connection; under
    load every worker is a request queued on that lock or on the pool — deadlocks the
    chaos soak found. Views are built before this closes, so nothing reads a closed session.
    """
    try:
        yield
    finally:
        session.close()


def presigned(
    storage: Storage, settings: OrchestratorSettings, run_id: int, task_id: int, lease: int
) -> PresignedUrls:
    ttl = settings.task_max_duration
    rkey, ekey = result_key(run_id, task_id, lease=lease), error_key(run_id, task_id, lease=lease)
    return PresignedUrls(
        result_upload_url=storage.presign_put(rkey, ttl),
        error_upload_url=storage.presign_put(ekey, ttl),
        result_key=rkey,
        error_key=ekey,
    )


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL (the insert would be a 500); keep the rest of what a
    # runner reported (crash output can carry NULs) rather than refuse it.
    return value.replace("\x00", "\ufffd")


def has_nul(body: ClaimRequest) -> bool:
    return "\x00" in body.runner_id or (body.host is not None and "\x00" in body.host)


def _refuse_nul(body: ClaimRequest) -> None:
    if "\x00" in body.runner_id:
        raise Unprocessable("runner_id: NUL characters are not allowed")
    if body.host is not None and "\x00" in body.host:
        raise Unprocessable("host: NUL characters are not allowed")


def claim_response(
    storage: Storage, settings: OrchestratorSettings, outcome: hot.ClaimOutcome
) -> bytes:
    """The claim's response body (the route and api/fast.py answer with the same bytes)."""
    model = _claim_response_model(storage, settings, outcome)
    return model.model_dump_json(exclude_none=True).encode()


def _claim_response_model(
    storage: Storage, settings: OrchestratorSettings, outcome: hot.ClaimOutcome
) -> ClaimResponse:
    claimed = outcome.claimed
    if outcome.wait:
        # A running task may still fail over to this runner: stay, do not exit.
        return ClaimResponse(status=ClaimStatus.wait, retry_after_seconds=RETRY_WAIT_SECONDS)
    if claimed is None:
        return ClaimResponse(status=ClaimStatus.done)
    return ClaimResponse(
        status=ClaimStatus.assigned,
        task=TaskAssignment(
            id=claimed.task_id,
            run_id=claimed.run_external_id,
            provider=claimed.provider,
            instance_type=claimed.instance_type,
            alias=claimed.alias,
            run_number=claimed.run_number,
            ruby_version=claimed.ruby_version.split(",")[0],
            ruby_versions=claimed.ruby_version.split(",") if "," in claimed.ruby_version else None,
            benchmarks=BenchmarkSettings.model_validate(claimed.benchmarks),
            lease=claimed.lease,
            attempt=claimed.attempt,
            max_attempts=claimed.max_attempts,
        ),
        presigned_urls=presigned(
            storage,
            settings,
            claimed.run_external_id,
            claimed.task_id,
            claimed.lease,
        ),
    )


async def _claim_response(request: Request, body: ClaimRequest, run_id: int | None) -> Response:
    # db/hot.claim in one transaction in a thread (on Postgres the common claim was
    # answered before this, by api/fast.py); the model serialised once (a Response skips
    # FastAPI's second validation).
    _refuse_nul(body)
    work = partial(
        hot.claim,
        provider=body.provider,
        instance_type=body.instance_type,
        runner_id=body.runner_id,
        alias=body.alias,
        run_external_id=run_id,
        host=body.host,
    )
    outcome = await request.app.state.hot.run(lambda conn: work(conn=conn))
    state = request.app.state
    body_out = claim_response(state.storage, state.settings, outcome)
    return Response(body_out, media_type="application/json")


@router.post("/tasks/claim", response_model=ClaimResponse, response_model_exclude_none=True)
async def claim_any(request: Request, body: ClaimRequest) -> Response:
    return await _claim_response(request, body, None)


@router.post(
    "/runs/{run_id}/tasks/claim", response_model=ClaimResponse, response_model_exclude_none=True
)
async def claim_in_run(request: Request, run_id: RunIdPath, body: ClaimRequest) -> Response:
    return await _claim_response(request, body, run_id)


def _out(session: Session, task: Task) -> TaskOut:
    run = session.get(Run, task.run_id)
    assert run is not None
    ended = attempts.history(session=session, run_pk=run.id, task_id=task.id)
    return task_out(task, run, ended.get(task.id))


def heartbeat_fields(body: HeartbeatRequest) -> dict[str, Any]:
    """The columns a heartbeat sets (db/hot.heartbeat's fields)."""
    fields = body.model_dump(
        exclude_unset=True, exclude={"runner_id", "lease", "status", "message"}
    )
    fields["heartbeat_status"] = body.status
    if fields.get("current_benchmark") is not None:
        # \x1f separates names in db/runs.group_stats' aggregate.
        fields["current_benchmark"] = _text(fields["current_benchmark"]).replace("\x1f", " ")
    if body.message is not None:
        fields["heartbeat_message"] = _text(body.message)
    return fields


def heartbeat_response(row: dict[str, Any]) -> bytes:
    return task_out_from_row(row).model_dump_json().encode()


@router.post("/tasks/{task_id}/heartbeat", response_model=TaskOut)
async def heartbeat(task_id: TaskIdPath, body: HeartbeatRequest, request: Request) -> Response:
    work = partial(
        hot.heartbeat,
        task_id=task_id,
        runner_id=body.runner_id,
        lease=body.lease,
        fields=heartbeat_fields(body),
    )
    row = await request.app.state.hot.run(lambda conn: work(conn=conn))
    return Response(heartbeat_response(row._asdict()), media_type="application/json")


@router.post("/tasks/{task_id}/upload_urls", response_model=PresignedUrls)
def upload_urls(
    task_id: TaskIdPath,
    body: UploadUrlsRequest,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> PresignedUrls:
    with _closing(session):
        task = queue.load_for_runner(
            session=session, task_id=task_id, runner_id=body.runner_id, lease=body.lease
        )
        queue.ensure_active(task)
        run = session.get(Run, task.run_id)
        assert run is not None
        return presigned(storage, settings, run.external_id, task.id, task.lease)


@router.post("/tasks/{task_id}/complete", response_model=TaskOut)
def complete(
    task_id: TaskIdPath,
    body: CompleteRequest,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
) -> TaskOut:
    with _closing(session):
        return _complete(task_id, body, request, session, storage)


def _complete(
    task_id: int, body: CompleteRequest, request: Request, session: Session, storage: Storage
) -> TaskOut:
    task = queue.load_for_runner(
        session=session, task_id=task_id, runner_id=body.runner_id, lease=body.lease
    )
    # The upload is read before any lock is taken (it can take seconds).
    problem = task_result_problem(session, storage, task, body.s3_result_key)
    # Run lock first (see queue.lock_run), then the task as it is now: a concurrent
    # identical complete that got here first makes this one the idempotent no-op.
    queue.lock_run(session=session, run_pk=task.run_id)
    queue.lock_task(session=session, task=task)
    if task.status == TaskStatus.completed and task.result_key == body.s3_result_key:
        session.commit()  # nothing changed; releases the run lock now
        return _out(session, task)  # an identical retry: no-op
    queue.ensure_active(task)
    run = session.get(Run, task.run_id)
    assert run is not None
    expected = result_key(run.external_id, task.id, lease=task.lease)
    if body.s3_result_key != expected:
        raise Unprocessable(f"s3_result_key must be the key issued for this task: {expected}")
    if not storage.exists(expected):
        raise Unprocessable(f"no result uploaded at {expected}; upload it before completing")
    if problem:
        _fail_unusable(request, session, task, problem)
    values = queue.finish_values(session, TaskStatus.completed, result_key=expected)
    attempts.record(session=session, ids=[task.id], outcome=AttemptOutcome.completed.value)
    queue.fenced_update(session=session, task=task, values=values)
    _finish(request, session, task)
    return _out(session, task)


def _fail_unusable(request: Request, session: Session, task: Task, problem: str) -> None:
    """The attempt fails as upload_failed (retried while attempts remain); then a 422."""
    message = f"{problem}; the attempt failed as upload_failed"
    values = queue.finish_values(
        session,
        TaskStatus.failed,
        error_type=ErrorType.upload_failed.value,
        error_message=message,
    )
    attempts.fail_or_retry(
        session=session,
        ids=[task.id],
        error_type=ErrorType.upload_failed,
        error_message=message,
        final_values=values,
    )
    session.refresh(task)
    _finish(request, session, task)
    retried = task.status == TaskStatus.pending
    raise Unprocessable(f"{message} ({'retried' if retried else 'no attempts left'})")


@router.post("/tasks/{task_id}/fail", response_model=TaskOut)
def fail(
    task_id: TaskIdPath,
    body: FailRequest,
    request: Request,
    session: SessionDep,
) -> TaskOut:
    with _closing(session):
        return _fail(task_id, body, request, session)


def _fail(task_id: int, body: FailRequest, request: Request, session: Session) -> TaskOut:
    task = queue.load_for_runner(
        session=session, task_id=task_id, runner_id=body.runner_id, lease=body.lease
    )
    queue.lock_run(session=session, run_pk=task.run_id)
    queue.lock_task(session=session, task=task)
    error_type, error_message = body.error_type.value, _text(body.error_message)
    if _repeated_failure(session, task, body.runner_id, error_type, error_message):
        session.commit()  # nothing changed; releases the run lock now
        return _out(session, task)  # an identical retry: no-op
    queue.ensure_active(task)
    run = session.get(Run, task.run_id)
    assert run is not None
    issued = error_key(run.external_id, task.id, lease=task.lease)
    if body.s3_error_key is not None and body.s3_error_key != issued:
        raise Unprocessable(f"s3_error_key must be the key issued for this task: {issued}")
    values = queue.finish_values(
        session,
        TaskStatus.failed,
        error_type=error_type,
        error_message=error_message,
        error_key=body.s3_error_key,
    )
    ended = attempts.fail_or_retry(
        session=session,
        ids=[task.id],
        error_type=body.error_type,
        error_message=error_message,
        final_values=values,
    )
    if not any(ended):  # cannot happen under the task lock; fenced all the same
        raise Conflict(f"task {task.id} is no longer active (lost a race with its end)")
    session.refresh(task)
    _finish(request, session, task)
    return _out(session, task)


def _repeated_failure(
    session: Session, task: Task, runner_id: str, error_type: str, error_message: str
) -> bool:
    """The same failure reported again (a lost response), whether it ended or retried it."""
    if task.status in (TaskStatus.claimed, TaskStatus.running):
        return False
    last = attempts.latest(session=session, task_id=task.id)
    return (
        last is not None
        and last.runner_id == runner_id
        and last.error_type == error_type
        and last.error_message == error_message
    )


def _finish(request: Request, session: Session, task: Task) -> None:
    finalized = queue.finalize_if_done(session=session, run_pk=task.run_id)
    session.commit()
    if finalized:
        # Never build the archive inside the request that finished the last task.
        schedule_archive(request.app)

"""Machines: the boot stages runner VMs report, one row per (run, instance id)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudbench.orchestrator.db import attempts, queue
from cloudbench.orchestrator.db.clock import db_now
from cloudbench.orchestrator.db.models import Machine, Run, Task
from cloudbench.orchestrator.errors import NotFound
from cloudbench.protocol import ErrorType, HeartbeatStatus, MachineReport, TaskStatus


def record_report(*, session: Session, run: Run, report: MachineReport) -> Machine:
    """Insert or update the machine's row; the stage's `since` moves only when it changes.

    Two reports of one machine at once (the runner's and its boot script's trap) meet
    at the unique index: the loser updates the winner's row under a savepoint.
    """
    for _ in range(3):
        machine = _find(session, run.id, report.instance_id)
        if machine is not None:
            _apply(session, machine, report, new=False)
            session.flush()
            return machine
        try:
            with session.begin_nested():
                machine = Machine(run_id=run.id, instance_id=report.instance_id)
                _apply(session, machine, report, new=True)
                session.add(machine)
            return machine
        except IntegrityError:
            continue
    raise RuntimeError("machine row contention")  # three lost races in a row: a bug


def _find(session: Session, run_pk: int, instance_id: str) -> Machine | None:
    query = select(Machine).where(Machine.run_id == run_pk, Machine.instance_id == instance_id)
    return session.execute(query.with_for_update()).scalar_one_or_none()


def _apply(session: Session, machine: Machine, report: MachineReport, *, new: bool) -> None:
    now = db_now(session)
    machine.provider, machine.instance_type = report.provider, report.instance_type
    machine.alias = report.alias or report.instance_type
    if report.host is not None:
        machine.host = report.host
    if new or machine.stage != report.stage:
        machine.stage, machine.stage_since = report.stage, now
    if new:
        machine.first_seen_at = now
    machine.last_seen_at = now
    # A later report without a line keeps the last one: "since when, last line".
    if report.message is not None:
        machine.message = report.message
    if report.log_tail is not None:
        machine.log_tail = report.log_tail
    if report.stages:
        _merge_stages(machine, report.stages)


def _merge_stages(machine: Machine, reported: dict[str, datetime]) -> None:
    """A stage keeps its first time: a repeated report (or a retried POST) cannot move it."""
    kept = dict(machine.stages or {})
    for name, at in reported.items():
        if name not in kept:
            aware = at if at.tzinfo else at.replace(tzinfo=UTC)
            kept[name] = aware.astimezone(UTC).isoformat(timespec="milliseconds")
    if kept != (machine.stages or {}):
        machine.stages = kept  # a new dict: the JSON column sees the change


def list_machines(*, session: Session, run: Run) -> list[Machine]:
    query = select(Machine).where(Machine.run_id == run.id)
    return list(session.execute(query.order_by(Machine.alias, Machine.instance_id)).scalars())


def database_now(*, session: Session) -> datetime:
    """The database clock as an aware UTC datetime (SQLite answers with text)."""
    value = session.execute(select(db_now(session))).scalar_one()
    if isinstance(value, str):
        value = datetime.fromisoformat(value[:26])
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def release_lost(
    *, session: Session, run: Run, instance_id: str, reason: str
) -> tuple[list[int], list[int]]:
    """End the active tasks of a machine the master saw fail or vanish, as
    `instance_terminated`: (retried, failed) task ids. Its runner, should it still live,
    gets 409 at its next heartbeat. Locks the run, then the tasks (the usual order)."""
    queue.lock_run(session=session, run_pk=run.id)
    machine = _find(session, run.id, instance_id)
    if machine is None:
        raise NotFound(f"run {run.external_id} has no machine {instance_id}")
    if machine.stage != HeartbeatStatus.error:
        machine.stage, machine.stage_since = HeartbeatStatus.error, db_now(session)
        machine.message = f"lost: {reason}"
    if not machine.host:  # it never claimed anything
        return [], []
    ids = attempts.lock_tasks(
        session=session, where=[Task.run_id == run.id, Task.runner_host == machine.host]
    )
    message = f"instance {instance_id} lost: {reason}"
    final = queue.finish_values(
        session,
        TaskStatus.failed,
        error_type=ErrorType.instance_terminated,
        error_message=message,
    )
    return attempts.fail_or_retry(
        session=session,
        ids=ids,
        error_type=ErrorType.instance_terminated,
        error_message=message,
        final_values=final,
    )

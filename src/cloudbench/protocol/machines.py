"""Machine (VM) boot reports: what a runner machine says about itself, and the views.

A cloud VM reports its stage from the first minute of its boot (its user-data, with curl)
and then from the runner: ``boot → provision → running → uploading → finished | error``,
the same statuses a task heartbeat carries. The orchestrator keeps one row per
(run, instance id); the master and the dashboard show stage, since when and last line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from cloudbench.protocol.config import Name, Strict
from cloudbench.protocol.enums import HeartbeatStatus

# The last log lines a failing boot sends; more is refused (422), so senders cut first.
MAX_LOG_TAIL = 16_000
MAX_LINE = 2000
MAX_STAGES = 32

# Boot stage names (issue 27), in the order a VM passes them. `image_present` is the
# container executor's benchmark image ready, `ruby_ready` the host executor's Ruby.
BOOT_STAGES = (
    "instance_start",
    "user_data_start",
    "runner_installed",
    "image_present",
    "ruby_ready",
    "first_claim",
    "first_benchmark",
)
StageName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]

InstanceId = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]


class MachineReport(Strict):
    """`POST /runs/{run_id}/machines` (runner token)."""

    instance_id: InstanceId
    provider: Literal["aws", "azure", "local"]
    instance_type: Name
    alias: Name | None = None
    stage: HeartbeatStatus
    # The one line the master prints for this machine (its cause line on error).
    message: Annotated[str, Field(max_length=MAX_LINE)] | None = None
    # The last lines of the boot log; a failed boot sends them before it powers off.
    log_tail: Annotated[str, Field(max_length=MAX_LOG_TAIL)] | None = None
    # The machine's hostname: tasks record it as runner_host.
    host: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    # Boot stages reached so far, name → when (BOOT_STAGES; merged into what is kept, a
    # stage's first time wins).
    stages: Annotated[dict[StageName, datetime], Field(max_length=MAX_STAGES)] | None = None


class MachineOut(BaseModel):
    instance_id: str
    provider: str
    instance_type: str
    alias: str
    stage: HeartbeatStatus
    stage_since: datetime
    first_seen_at: datetime
    last_seen_at: datetime
    message: str | None = None
    log_tail: str | None = None
    host: str | None = None
    stages: dict[str, datetime] = Field(default_factory=dict)


class MachineList(BaseModel):
    """`GET /runs/{run_id}/machines`; `now` is the database clock, so ages need no sync."""

    run_id: int
    now: datetime
    machines: list[MachineOut]


class MachineLost(Strict):
    """`POST /runs/{run_id}/machines/{instance_id}/lost` (admin token): the master saw
    the machine fail or vanish; its active tasks end as `instance_terminated` (retried
    on another machine while attempts are left)."""

    reason: Annotated[str, Field(min_length=1, max_length=MAX_LINE)]


class MachineReleased(BaseModel):
    instance_id: str
    retried: list[int] = Field(default_factory=list)  # task ids back to pending
    failed: list[int] = Field(default_factory=list)  # task ids out of attempts

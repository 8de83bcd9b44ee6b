"""The files of a results archive: ``manifest.json`` and each task's ``metadata.json``.

Both carry ``format_version``; version 1 is the shape cloudbench has always written
(metadata without the key at all). Metadata 2 adds provenance, verified checks and
noise (docs/results.md); format-1 files still read, with the format-2 fields None.
Metadata 3 adds ``benchmark_categories``, ``checks.engine_off_benchmark_cpus`` and
``execution.engine_affinity``: in a format-2 file their absence means "not recorded".
Metadata 4 verifies the CPUs from the machine (every cloudbench lease on it, processes
seen on the slot's CPUs): ``checks.own_core`` is new, ``checks.siblings_idle`` and
``slot.concurrent`` cover every runner on the machine, not only the task's own runner;
``slot.lease``, ``slot.seen_on_cpus`` and ``benchmark_order`` are new. In older files
``own_core`` is None (not recorded) and ``siblings_idle`` only knew the runner's slots.
Metadata 5 adds the Ruby matrix: ``ruby.ruby_versions`` and ``ruby.rubies`` (every Ruby
the task ran), per label in ``ruby.executables`` its ``ruby_version``, ``name``, ``jit``,
``options`` and ``engine_check``, ``benchmark_order.columns`` and ``memory``; a format-4
file has one Ruby and labels that are engine names.
Metadata 6 adds ``boot``: the machine's boot stages (name → ISO time) and
``time_to_first_benchmark_s`` (user-data start to the machine's first benchmark); older
files read with ``boot`` None (not recorded).
Manifest 2 adds each task's ``attempt`` and ``attempts``; a format-1 manifest reads with
attempt 1 and no history. Manifest 3 adds each task's ``ruby_versions`` (every Ruby it
ran) and ``counts``: tasks per instance type x Ruby by status; older manifests read
with neither (one Ruby, named in each task's metadata.json).
Readers accept unknown extra keys (a newer writer may add some) but refuse a newer
format_version, which would mean fields changed meaning.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloudbench.protocol.config import BenchmarkSettings
from cloudbench.protocol.enums import AslrState, TaskStatus

MANIFEST_VERSION = 3
METADATA_VERSION = 6
MANIFEST_NAME = "manifest.json"
METADATA_NAME = "metadata.json"


def _supported(value: int, current: int, name: str) -> int:
    if value > current:
        raise ValueError(
            f"{name} format_version {value} is newer than this cloudbench reads ({current});"
            " upgrade cloudbench"
        )
    return value


class _Versioned(BaseModel):
    model_config = ConfigDict(extra="allow")


class ManifestError(BaseModel):
    # Not ErrorType: an archive must stay readable when a newer runner adds a type.
    type: str | None = None
    message: str | None = None


class ManifestTask(_Versioned):
    task_id: int
    provider: str
    instance_type: str
    alias: str | None
    run_number: int | None = None
    status: TaskStatus
    attempt: int = 1
    # Every ended attempt as in GET /runs/{id}/tasks; plain dicts so an archive stays
    # readable when a newer orchestrator adds an outcome.
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    directory: str
    error: ManifestError | None = None
    files: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    ruby_versions: list[str] = Field(default_factory=list)  # format 3

    @property
    def label(self) -> str:
        return self.alias or self.instance_type


class MatrixCount(BaseModel):
    """Manifest 3: how many tasks of one instance type ran one Ruby, by status."""

    provider: str
    instance_type: str
    alias: str | None
    ruby_version: str
    tasks: int
    completed: int


def matrix_counts(tasks: list[ManifestTask]) -> list[MatrixCount]:
    """Tasks per (instance type, Ruby); every task counts for each Ruby it ran."""
    counts: dict[tuple[str, str, str | None, str], list[int]] = {}
    for task in tasks:
        for ruby in task.ruby_versions:
            key = (task.provider, task.instance_type, task.alias, ruby)
            row = counts.setdefault(key, [0, 0])
            row[0] += 1
            row[1] += task.status == TaskStatus.completed
    return [
        MatrixCount(provider=p, instance_type=t, alias=a, ruby_version=r, tasks=n, completed=c)
        for (p, t, a, r), (n, c) in counts.items()
    ]


def check_manifest_version(value: object) -> int:
    """For readers of the raw JSON (report): 1 and 2 read, anything else is refused."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{MANIFEST_NAME} format_version {value!r} is not a version")
    return _supported(value, MANIFEST_VERSION, MANIFEST_NAME)


class Manifest(_Versioned):
    """``manifest.json`` at the top of results.tar.gz: every task of the run."""

    # A file without the key is format 1; the archive writes MANIFEST_VERSION.
    format_version: int = 1
    run_id: int | None = None
    removed_tasks: int = 0
    task_count: int | None = None
    tasks: list[ManifestTask]
    counts: list[MatrixCount] = Field(default_factory=list)  # format 3

    @field_validator("format_version")
    @classmethod
    def _known(cls, value: int) -> int:
        return check_manifest_version(value)

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode() + b"\n"


class MetadataChecks(BaseModel):
    """Verified per task (format 2), so a report can flag a task without re-deriving."""

    aslr_disabled: bool
    executables_verified: bool
    siblings_idle: bool
    env_clean: bool
    steal_pct: float | None = None
    # Format 3. Containers: engine daemons and the container's helper read back off every
    # benchmark CPU (False when not verified); None for the host executor, which has no
    # engine, and in older files, which did not record it.
    engine_off_benchmark_cpus: bool | None = None
    # Format 4: no other cloudbench lease and no process pinned there used the slot's CPUs
    # (read from the machine); None in older files.
    own_core: bool | None = None


class BootBlock(BaseModel):
    """Format 6: when the task's machine reached each boot stage (protocol.BOOT_STAGES),
    and seconds from its user-data start to its first benchmark (None: not both known)."""

    model_config = ConfigDict(extra="allow")

    stages: dict[str, str] = Field(default_factory=dict)
    time_to_first_benchmark_s: float | None = None


class Metadata(_Versioned):
    """``metadata.json`` in every task's result (and error) tarball: what ran where.

    Facts only known after the run (exit code, Ruby description) stay None when the task
    failed before them.
    """

    format_version: int = 1  # a file without the key is format 1
    task_id: int
    run_id: int
    provider: str
    instance_type: str
    alias: str
    run_number: int
    runner_id: str
    lease: int
    ruby_version: str
    benchmarks: BenchmarkSettings
    ruby_bench_commit: str | None = None
    # Format 2 keeps the ruby-bench provenance under "ruby" (an extra key).
    ruby_bench_source: str | None = None
    ruby_bench_content_id: str | None = None
    executor: str
    cpuset: str
    cloudbench_version: str
    aslr: AslrState | None = None  # format 2
    checks: MetadataChecks | None = None  # format 2
    # The machine (runner/slots.machine_facts).
    hostname: str | None = None
    cpu_model: str | None = None
    logical_cores: int | None = None
    physical_cores: int | None = None
    kernel: str | None = None
    kernel_version: str | None = None
    arch: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    failed_benchmarks: dict[str, list[str]] = Field(default_factory=dict)
    # Format 3: benchmark → category from the suite's benchmarks.yml ({} before).
    benchmark_categories: dict[str, str] = Field(default_factory=dict)
    ruby_description: str | None = None
    image_id: str | None = None
    image_tag: str | None = None
    exit_code: int | None = None
    command: list[str] | None = None
    timed_out: bool | None = None
    duration_seconds: float | None = None
    container_id: str | None = None
    boot: BootBlock | None = None  # format 6

    @field_validator("format_version")
    @classmethod
    def _known(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"{METADATA_NAME} format_version {value} is not a version")
        return _supported(value, METADATA_VERSION, METADATA_NAME)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with facts never learned left out (as runners always wrote it)."""
        data = self.model_dump(mode="json", exclude_unset=True)
        data["format_version"] = self.format_version
        data["benchmarks"] = self.benchmarks.model_dump(mode="json")
        return data


class CostEntry(BaseModel):
    """One instance type's share of a run's cost, from the master's launch/termination times."""

    provider: Literal["aws", "azure"]
    instance_type: str
    alias: str
    vms: int
    launched_at: datetime
    terminated_at: datetime
    instance_hours: float
    usd_per_hour: float | None  # per VM; None: no price known
    usd: float | None
    # Issue 27 (older ledgers read as on-demand with no source): what the VMs were bought
    # as, and where usd_per_hour came from ("aws-spot-price-history" with the entry's
    # own timestamp for spot; the plan's source otherwise).
    capacity: Literal["on-demand", "spot"] = "on-demand"
    price_source: str | None = None
    price_date: str | None = None
    # Replacement VMs of reclaimed spot VMs, what they were bought as, from when.
    notes: list[str] = Field(default_factory=list)


class MetaShare(BaseModel):
    """The AWS meta deployment's hours during the run (it stays up after it, until nuked)."""

    hours: float
    usd_per_hour: float
    usd: float


class CostLedger(BaseModel):
    """results/<run-id>/cost-ledger.json, written by the master at teardown; read by report.

    `meta` (added later, optional: older ledgers lack it) is the meta deployment's share;
    `total_usd` includes it."""

    run_id: int
    entries: list[CostEntry]
    total_usd: float  # of the priced entries and the meta share
    unpriced: list[str]  # "provider/instance_type" without a price
    meta: MetaShare | None = None

"""Every contract between cloudbench's processes, in one package.

- `enums`: task, run, heartbeat, archive and claim statuses; error types.
- `config`: the run config file (`RunSpec`), also the `POST /runs` body.
- `api`: the other HTTP request and response bodies.
- `errors`: the ``{"error": …}`` envelope and validation-error text.
- `results`: ``manifest.json`` and ``metadata.json`` (versioned).

Import names from here: ``from cloudbench.protocol import RunSpec``.
"""

from cloudbench.protocol.api import (
    ClaimRequest,
    ClaimResponse,
    CompleteRequest,
    FailRequest,
    HeartbeatRequest,
    InstanceTypeProgress,
    PresignedUrls,
    RunCreated,
    RunList,
    RunOut,
    TaskAssignment,
    TaskBrief,
    TaskCounts,
    TaskList,
    TaskOut,
    UploadUrlsRequest,
)
from cloudbench.protocol.config import (
    KNOWN_KEYS,
    MAX_DB_INT,
    MAX_RUN_ID,
    PROVIDERS,
    BenchmarkSettings,
    InstanceTypeSpec,
    Name,
    PerInstanceType,
    PriceKey,
    RunSpec,
)
from cloudbench.protocol.enums import (
    ACTIVE_STATUSES,
    ARCHIVE_SETTLED,
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    ArchiveState,
    ClaimStatus,
    ErrorType,
    HeartbeatStatus,
    RunStatus,
    TaskStatus,
)
from cloudbench.protocol.errors import (
    ErrorBody,
    Problem,
    describe,
    error_body,
    error_message,
    problems,
)
from cloudbench.protocol.results import (
    MANIFEST_NAME,
    MANIFEST_VERSION,
    METADATA_NAME,
    METADATA_VERSION,
    Manifest,
    ManifestError,
    ManifestTask,
    Metadata,
)

__all__ = [
    "ACTIVE_STATUSES",
    "ARCHIVE_SETTLED",
    "KNOWN_KEYS",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "MAX_DB_INT",
    "MAX_RUN_ID",
    "METADATA_NAME",
    "METADATA_VERSION",
    "PROVIDERS",
    "TERMINAL_STATUSES",
    "UNFINISHED_STATUSES",
    "ArchiveState",
    "BenchmarkSettings",
    "ClaimRequest",
    "ClaimResponse",
    "ClaimStatus",
    "CompleteRequest",
    "ErrorBody",
    "ErrorType",
    "FailRequest",
    "HeartbeatRequest",
    "HeartbeatStatus",
    "InstanceTypeProgress",
    "InstanceTypeSpec",
    "Manifest",
    "ManifestError",
    "ManifestTask",
    "Metadata",
    "Name",
    "PerInstanceType",
    "PresignedUrls",
    "PriceKey",
    "Problem",
    "RunCreated",
    "RunList",
    "RunOut",
    "RunSpec",
    "RunStatus",
    "TaskAssignment",
    "TaskBrief",
    "TaskCounts",
    "TaskList",
    "TaskOut",
    "TaskStatus",
    "UploadUrlsRequest",
    "describe",
    "error_body",
    "error_message",
    "problems",
]

"""The ruby-bench suite the master ships through the orchestrator (`--ruby-bench`).

`PUT /ruby-bench/{run_id}?sha256=<hex>` (admin token; the body: the packed suite, a
.tar.gz) stores it with the run and records its sha256; `GET /ruby-bench/{run_id}` (any
token) streams it back with that sha256 in `SUITE_SHA256_HEADER`. Runners that cannot read
the run's bucket (Azure VMs) fetch it there and check it against the sha256 the master
put in their boot data.
"""

from __future__ import annotations

from pydantic import BaseModel

# A packed ruby-bench is a few MB; the bound keeps a wrong path (a home directory) out.
MAX_SUITE_BYTES = 64 << 20
SHA256_PATTERN = r"^[0-9a-f]{64}$"
SUITE_SHA256_HEADER = "X-Cloudbench-Sha256"
SUITE_PREFIX = "/ruby-bench/"


class SuiteStored(BaseModel):
    run_id: int
    sha256: str
    size: int

"""Pick the storage backend from CLOUDBENCH_STORAGE_URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from cloudbench.orchestrator.storage.base import Storage
from cloudbench.orchestrator.storage.local import DEFAULT_MAX_BYTES, LocalStorage

_HINT = "CLOUDBENCH_STORAGE_URL must be file:///absolute/path or s3://bucket[/prefix]"


def storage_from_url(
    url: str,
    *,
    public_url: str,
    secret: bytes,
    max_bytes: int = DEFAULT_MAX_BYTES,
    region: str | None = None,
    endpoint_url: str | None = None,
    public_endpoint_url: str | None = None,
) -> Storage:
    """Build the backend for url; public_url/secret/max_bytes only matter for file://."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"{_HINT}; got {url!r} (query strings are not supported)")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"{_HINT}; got {url!r} (the path must be absolute)")
        return LocalStorage(Path(unquote(parts.path)), public_url, secret, max_bytes)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"{_HINT}; got {url!r} (no bucket)")
        # Here: boto3 costs ~0.3 s of CPU to import, at every start of a local-storage server.
        from cloudbench.orchestrator.storage.s3 import S3Storage

        return S3Storage(
            parts.netloc,
            parts.path.strip("/"),
            region=region,
            endpoint_url=endpoint_url,
            public_endpoint_url=public_endpoint_url,
        )
    raise ValueError(f"{_HINT}; got {url!r}")

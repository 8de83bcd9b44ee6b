"""The error statuses each route can answer, for the OpenAPI document.

Every one is the `{"error": "..."}` envelope (protocol.ErrorBody), built in app.py.
"""

from __future__ import annotations

from typing import Any

from cloudbench.protocol import ErrorBody

_WHY = {
    400: "Malformed request (e.g. a body that is not JSON)",
    401: "No token, or an unknown one",
    403: "The wrong token for this endpoint, or another runner's task",
    404: "Unknown run, task or object",
    409: "The state forbids it (for runners: stop working on this task)",
    412: "The object already exists (results are written once)",
    413: "Body too large",
    422: "Invalid input, naming the field",
    503: "Database or result storage unavailable; retry after Retry-After",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: each status with the error envelope."""
    return {status: {"model": ErrorBody, "description": _WHY[status]} for status in statuses}


API = errors(400, 401, 403, 404, 409, 413, 422, 503)

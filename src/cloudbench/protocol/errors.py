"""The one error envelope, ``{"error": "<message>"}``, and validation errors as text.

Every 4xx/5xx body the orchestrator sends is built by `error_body`; every client reads
one with `error_message`. `describe` turns pydantic's errors into the one-line
``field: problem`` form the API, the master and the runner all print.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

# Location parts that name pydantic/FastAPI internals, not a field the user wrote.
_INTERNAL_LOC = frozenset({"body", "function-before", "function-after", "str"})
MESSAGE_LIMIT = 500


class ErrorBody(BaseModel):
    error: str


def error_body(message: str) -> dict[str, str]:
    return ErrorBody(error=message).model_dump()


def error_message(content: bytes | str, limit: int = MESSAGE_LIMIT) -> str:
    """The message of an error response, whatever shape it came in (proxies send HTML)."""
    text = content.decode(errors="replace") if isinstance(content, bytes) else content
    try:
        body = json.loads(text)
    except ValueError:
        return text[:limit]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("detail") or body)[:limit]
    return str(body)[:limit]


@dataclass(frozen=True)
class Problem:
    """One validation error: where (as the user wrote it), what, and what was given."""

    loc: tuple[int | str, ...]
    message: str
    kind: str
    input: Any = None

    def field(self, *, brackets: bool = False) -> str:
        """``a.b.0.c``, or ``a.b[0].c`` with brackets; "" for the top level."""
        if not brackets:
            return ".".join(str(part) for part in self.loc)
        text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.loc)
        return text.lstrip(".")


def problems(errors: Sequence[ErrorDetails]) -> list[Problem]:
    return [
        Problem(
            loc=tuple(p for p in error["loc"] if p not in _INTERNAL_LOC),
            message=str(error["msg"]).removeprefix("Value error, "),
            kind=error["type"],
            input=error.get("input"),
        )
        for error in errors
    ]


def describe(errors: Sequence[ErrorDetails], limit: int = 5) -> str:
    """``field: problem; field: problem`` for the first `limit` errors."""
    parts = []
    for problem in problems(errors)[:limit]:
        field = problem.field()
        parts.append(f"{field}: {problem.message}" if field else problem.message)
    return "; ".join(parts)

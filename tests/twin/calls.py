"""How moto answers the twin's API calls: a log of them, and SDK retries made harmless.

Every attempt of one SDK call carries the same `amz-sdk-invocation-id` and
`amz-sdk-request: attempt=N`. Under load the twin's Terraform runs saw a second attempt
of a call moto had already carried out (`CreateSecurityGroup` → InvalidGroup.Duplicate,
`RevokeSecurityGroupEgress` of the default rule → InvalidPermission.NotFound,
`AuthorizeSecurityGroupEgress` → InvalidPermission.Duplicate): the first answer never
reached the client, and a changing call done twice fails where EC2's one would not. So a
retry of a changing call moto answered already gets that same answer again (a retry that
arrives while the first attempt still runs waits for it); `moto-requests.log` says so
("replayed") next to every changing, failed, retried or slow request. And moto carries
out one call at a time (MOTO): its models are not safe for the threads its server runs.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

READS = ("Describe", "Get", "List", "GET ", "HEAD ")
# Request parameters that name what a request acts on (never secrets).
TARGETS = ("GroupId", "GroupName", "InstanceId.1", "VpcId", "SubnetId", "Name", "RoleName")
KEEP = 5000  # answers kept for retries (a Terraform apply makes a few hundred calls)
# moto's models are not thread-safe (two RunInstances in one subnet at once: "generator
# already executing" from its address allocator, a 500 and a retry); its server runs a
# thread per request, so the twin carries out one call at a time, as EC2 appears to.
MOTO = threading.RLock()


@dataclass
class _Answer:
    done: threading.Event = field(default_factory=threading.Event)
    response: Any = None  # (status, headers, body) once answered below 500


class Calls:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.lock = threading.Lock()
        self.answers: OrderedDict[str, _Answer] = OrderedDict()

    def handle(self, original: Any, handler: Any, args: Any, kwargs: Any) -> Any:
        from flask import Response
        from flask import request as flask_request

        started, wall = time.monotonic(), time.time()
        action, target = _describe(flask_request)
        attempt = flask_request.headers.get("amz-sdk-request", "")
        invocation = flask_request.headers.get("amz-sdk-invocation-id", "")
        changing = not action.startswith(READS)
        answer, first = self._answer(invocation) if changing and invocation else (None, True)
        status, note = 500, ""
        try:
            if answer and not first and answer.done.wait(timeout=120) and answer.response:
                status, headers, content = answer.response
                note = " replayed"
                return Response(response=content, status=status, headers=headers)
            if flask_request.content_encoding != "gzip":  # moto inflates those itself
                flask_request.get_data(cache=True)  # read the body before the lock
            with MOTO:
                response = original(handler, args, **kwargs)
            status = response.status_code
            if answer is not None and status < 500:
                answer.response = (status, list(response.headers), response.get_data())
            return response
        finally:
            if answer is not None and first:
                answer.done.set()
            took = time.monotonic() - started
            retry = attempt.split(";")[0].strip() not in ("", "attempt=1")
            if changing or status >= 400 or retry or took > 2.0:
                clock = time.strftime("%H:%M:%S", time.localtime(wall))
                self._write(
                    f"{clock}.{int(wall * 1000) % 1000:03d} {threading.current_thread().name}"
                    f" {action} {target} [{attempt or '-'}] -> {status} in {took:.3f}s{note}\n"
                )

    def _answer(self, invocation: str) -> tuple[_Answer, bool]:
        with self.lock:
            found = self.answers.get(invocation)
            if found is not None:
                return found, False
            self.answers[invocation] = answer = _Answer()
            while len(self.answers) > KEEP:
                self.answers.popitem(last=False)
            return answer, True

    def _write(self, line: str) -> None:
        with self.lock, self.log.open("a") as out:
            out.write(line)


def _describe(request: Any) -> tuple[str, str]:
    """The action (or method and path) and what it acts on, from the query or form."""
    params = dict(parse_qsl(request.query_string.decode("latin-1")))
    if request.mimetype == "application/x-www-form-urlencoded":
        params.update(parse_qsl(request.get_data(cache=True).decode("utf-8", "replace")))
    action = params.get("Action") or f"{request.method} {request.path[:60]}"
    return action, " ".join(f"{k}={params[k]}" for k in TARGETS if k in params)


_active: list[Calls] = []  # the twin's (the newest install), for the one wrapper
_original: list[Any] = []  # moto's own handler call, while wrapped


def install(log: Path) -> Calls:
    """Wraps every moto handler (moto's server calls them through this class), once per
    process; a later install (another twin in the same process) logs to its own file."""
    from moto.core.utils import convert_to_flask_response

    calls = Calls(log)
    if not _original:
        original = convert_to_flask_response.__call__
        _original.append(original)

        def call(self: Any, args: Any = None, **kwargs: Any) -> Any:
            return _active[-1].handle(original, self, args, kwargs)

        convert_to_flask_response.__call__ = call  # type: ignore[method-assign]
    _active[:] = [calls]
    return calls


def uninstall() -> None:
    """moto's handlers as they were (for tests that share their process with others)."""
    from moto.core.utils import convert_to_flask_response

    if _original:
        convert_to_flask_response.__call__ = _original.pop()  # type: ignore[method-assign]
    _active.clear()

"""Where moto's EC2 differs from EC2 in a way the stacks notice, the twin makes it behave
like EC2 (moto runs in the twin's process, so its models can be patched).

- A terminated instance's network interfaces that are not deleted with it (one created
  on its own and attached at launch, like the orchestrator's) become `available`, as on
  EC2; moto kept them attached, and Terraform's destroy of such an interface then failed
  ("cannot be detached"). The terminated instance still describes as before.
- An interface made at launch is deleted with its instance (EC2's default); moto kept
  it unless asked, so every runner left one behind.
- Terminating an instance that is terminated already changes nothing, as on EC2; moto
  deleted its network interfaces again and answered InvalidNetworkInterfaceID.NotFound
  (the twin's "powered off" and Terraform's destroy both terminate a finished runner).
- An instance launched with its security groups on its network interface (what the
  provider sends with `associate_public_ip_address`) reports them as its own, as on EC2;
  moto reported none, so every later plan wanted to add them to the bastion again.
"""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ec2.models.instances import Instance


def _release(nic: NetworkInterface) -> None:
    """Detached from its (terminated) instance, which keeps it for its description."""
    nic.instance = None
    nic.attachment_id = None
    nic.attach_time = None
    nic.status = "available"


def install() -> None:
    original_init = Instance.__init__

    def init(self: Instance, backend: Any, *args: Any, **kwargs: Any) -> None:
        existing = set(backend.enis)
        original_init(self, backend, *args, **kwargs)
        for nic in self.nics.values():
            if nic.id not in existing:  # made for this instance: EC2 deletes it with it
                nic.delete_on_termination = True
        primary = self.nics.get(0)
        if not self.security_groups and primary is not None:
            self.security_groups = list(primary._group_set)

    Instance.__init__ = init  # type: ignore[method-assign,assignment]
    original = Instance.terminate

    def terminate(self: Instance) -> Any:
        if self._state.name == "terminated":  # EC2: terminating it again changes nothing
            return copy.copy(self._state)
        state = original(self)
        for nic in list(self.nics.values()):
            if not nic.delete_on_termination:
                _release(nic)
        return state

    Instance.terminate = terminate  # type: ignore[method-assign]


def log_requests(path: Path) -> None:
    """One line per moto request that changes something, fails, is an SDK retry
    (`amz-sdk-request: attempt=N`, N > 1) or takes over 2 s: when, which thread, the
    action and its target, the attempt, the status and how long moto took. Reads only
    the query/form parameters, never credentials."""
    from flask import request as flask_request
    from moto.core.utils import convert_to_flask_response

    original = convert_to_flask_response.__call__
    lock = threading.Lock()

    def call(self: Any, args: Any = None, **kwargs: Any) -> Any:
        started, wall = time.monotonic(), time.time()
        params = dict(parse_qsl(flask_request.query_string.decode("latin-1")))
        if flask_request.mimetype == "application/x-www-form-urlencoded":
            body = flask_request.get_data(cache=True).decode("utf-8", "replace")
            params.update(parse_qsl(body))
        action = params.get("Action") or f"{flask_request.method} {flask_request.path[:60]}"
        attempt = flask_request.headers.get("amz-sdk-request", "")
        status = 500
        try:
            response = original(self, args, **kwargs)
            status = response.status_code
            return response
        finally:
            took = time.monotonic() - started
            retry = attempt.split(";")[0].strip() not in ("", "attempt=1")
            quiet = action.startswith(("Describe", "Get", "List", "GET ", "HEAD "))
            if not quiet or status >= 400 or retry or took > 2.0:
                target = " ".join(f"{k}={params[k]}" for k in TARGETS if k in params)
                clock = time.strftime("%H:%M:%S", time.localtime(wall))
                line = (
                    f"{clock}.{int(wall * 1000) % 1000:03d} {threading.current_thread().name}"
                    f" {action} {target} [{attempt or '-'}] -> {status} in {took:.3f}s\n"
                )
                with lock, path.open("a") as out:
                    out.write(line)

    convert_to_flask_response.__call__ = call  # type: ignore[method-assign]


# Request parameters that name what a request acts on (never secrets).
TARGETS = ("GroupId", "GroupName", "InstanceId.1", "VpcId", "SubnetId", "Name", "RoleName")

"""What EC2 says about a run's instances, so a VM that is gone is counted at once.

A reclaimed, crashed or self-terminated instance stops reporting; waiting for its
silence (or its boot timeout) costs minutes. `DescribeInstances` says `shutting-down`,
`terminated`, `stopping` or `stopped` right away. Credentials and endpoint come from
boto3's normal chain (the same the master's Terraform uses); any trouble is logged once
and the watch falls back to the reports.

A VM that never called in (it failed before it could reach the orchestrator, say at
`apt-get`) wrote its cause only to its serial console: `console_cause` reads it through
`GetConsoleOutput` and keeps one line of it (the runner user-data's "boot failed at step"
and the failed command's last line), with anything that looks like a secret masked.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

GONE = ("shutting-down", "terminated", "stopping", "stopped")
EVERY = 10.0  # seconds between looks
# The user-data's EXIT trap (runner-user-data.sh.tftpl) writes this header, then the last
# lines of its log, which end with its own "cloudbench: failed at step" line.
FAILED = re.compile(r"boot failed at step '(?P<step>[^']*)' \(exit (?P<code>\d+)\)")
TRAP_LINE = "cloudbench: failed at step "
STEP = re.compile(r"^cloudbench (?:i-[0-9a-f]+|unknown): (?P<step>.+)$")
SECRET = re.compile(
    r"(?i)\b(?P<name>[\w-]*(?:token|password|passwd|secret|authorization|api[_-]?key)[\w-]*)"
    r"(?P<sep>\s*[:=]\s*)(?:bearer\s+)?\S+|\b(?P<bearer>bearer)(?P<space>\s+)\S+"
)
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")
MAX_LINE = 300


class Ec2States:
    def __init__(self, region: str) -> None:
        self.region = region
        self._client: Any = None
        self._last = 0.0
        self._warned = False

    def gone(self, instance_ids: list[str]) -> dict[str, str]:
        """{instance id: EC2 state} of those that are gone; at most every EVERY seconds."""
        now = time.monotonic()
        if not instance_ids or now - self._last < EVERY:
            return {}
        self._last = now
        try:
            pages = (
                self._ec2().get_paginator("describe_instances").paginate(InstanceIds=instance_ids)
            )
            states = {
                i["InstanceId"]: i["State"]["Name"]
                for page in pages
                for r in page["Reservations"]
                for i in r["Instances"]
            }
        except (BotoCoreError, ClientError) as exc:
            if not self._warned:
                logger.warning(
                    "cannot ask EC2 for the runners' states (%s); relying on their reports", exc
                )
                self._warned = True
            return {}
        return {i: s for i, s in states.items() if s in GONE}

    def console_cause(self, instance_id: str) -> str | None:
        """One line saying why the instance failed, from its serial console, if it says."""
        try:
            # botocore decodes EC2's base64 (its handler for GetConsoleOutput).
            text = self._ec2().get_console_output(InstanceId=instance_id).get("Output") or ""
        except (BotoCoreError, ClientError) as exc:
            logger.warning("cannot read the serial console of %s: %s", instance_id, exc)
            return None
        return cause_line(text)

    def _ec2(self) -> Any:
        if self._client is None:
            import boto3  # here: ~0.3 s of CPU to import, in every master process

            self._client = boto3.client("ec2", region_name=self.region)
        return self._client


def cause_line(console: str) -> str | None:
    """The last boot failure the console shows, with the failed command's last line; else
    the last boot step it reached; None when it shows neither."""
    lines = [CONTROL.sub("", line).strip() for line in console.splitlines()]
    lines = [line for line in lines if line]
    for at in range(len(lines) - 1, -1, -1):
        found = FAILED.search(lines[at])
        if found is None:
            continue
        block = lines[at + 1 :]
        end = next((i for i, line in enumerate(block) if line.startswith(TRAP_LINE)), len(block))
        tail = [line for line in block[:end] if not line.startswith("+")]
        head = f"boot failed at step '{found['step']}' (exit {found['code']})"
        return _safe(f"console: {head}" + (f": {tail[-1]}" if tail else ""))
    steps = [m["step"] for line in lines if (m := STEP.match(line))]
    return _safe(f"console: last boot step '{steps[-1]}'") if steps else None


def _mask(found: re.Match[str]) -> str:
    if found["bearer"]:
        return f"{found['bearer']}{found['space']}***"
    return f"{found['name']}{found['sep']}***"


def _safe(line: str) -> str:
    line = SECRET.sub(_mask, line)
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"

"""GetConsoleOutput answers what the twin VM wrote to its console (the container's log).

moto's own answer is a fixed sample; the twin runs moto in its process, so it replaces
that one handler with one reading `<vms>/<instance-id>/console.log`, which the twin
keeps up to date from the container's output.
"""

from __future__ import annotations

from pathlib import Path

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.responses.general import General
from moto.ec2.utils import Base64EncodedString  # type: ignore[attr-defined]

# EC2 keeps the last 64 KB of a console.
LIMIT = 64 * 1024


def install(vms_dir: Path) -> None:
    def get_console_output(self: General) -> ActionResult:
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        path = vms_dir / instance.id / "console.log"
        try:
            text = path.read_bytes()[-LIMIT:].decode("utf-8", "replace")
        except OSError:
            text = ""
        return ActionResult(
            {
                "InstanceId": instance.id,
                "Timestamp": utcnow(),
                "Output": Base64EncodedString.from_raw_string(text),
            }
        )

    General.get_console_output = get_console_output  # type: ignore[method-assign]

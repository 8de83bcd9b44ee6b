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
from typing import Any

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

"""Cloud VMs of a run, as the master sees them: launched by Terraform, reporting their
boot stages to the orchestrator (`GET /runs/{id}/machines`).

A VM has failed when it reported `error`, never called in within the boot timeout,
stayed in `boot`/`provision` past it, or stopped calling in while `running` (the runner
refreshes its report every heartbeat interval). When every VM of a type has failed or
finished while the type has work, nothing will ever do that work: `failed_types` names
it with the cause line of its last failed VM, and the watcher stops the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cloudbench.platform.timefmt import duration
from cloudbench.protocol import HeartbeatStatus, MachineList, MachineOut

BOOTING = (HeartbeatStatus.boot, HeartbeatStatus.provision)
WORKING = (HeartbeatStatus.running, HeartbeatStatus.uploading)
DEFAULT_BOOT_TIMEOUT = 15 * 60.0


@dataclass
class Vm:
    provider: str
    alias: str
    instance_id: str  # what the VM reports as its instance id (EC2 id, Azure VM name)
    launched_at: float = field(default_factory=time.monotonic)
    report: MachineOut | None = None
    age: float = 0.0  # seconds since its last report, by the database clock
    failed_at: float | None = None
    cause: str | None = None
    address: str | None = None  # private IP, where the stack says (AWS)
    released: bool = False  # its tasks were handed back (POST .../lost)
    console_read: bool = False  # its serial console was asked why (never called in)

    def matches(self, reported: str) -> bool:
        return reported.lower() == self.instance_id.lower()


class VmWatch:
    def __init__(self, boot_timeout: float, silence_timeout: float) -> None:
        self.boot_timeout, self.silence_timeout = boot_timeout, silence_timeout
        self.vms: list[Vm] = []

    def launched(self, vms: list[Vm]) -> None:
        known = {(v.provider, v.instance_id) for v in self.vms}
        self.vms += [v for v in vms if (v.provider, v.instance_id) not in known]

    def vanished(self, states: dict[str, str]) -> None:
        """The cloud says these instances are gone (id → state): failed unless finished."""
        for vm in self.vms:
            state = states.get(vm.instance_id)
            if state and vm.failed_at is None and not self._gone(vm):
                vm.failed_at, vm.cause = time.monotonic(), f"vanished: EC2 reports it {state}"

    def pending_ids(self, provider: str) -> list[str]:
        """Instance ids of this provider's VMs still counted as alive."""
        return [v.instance_id for v in self.vms if v.provider == provider and not self._gone(v)]

    def update(self, listing: MachineList, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for vm in self.vms:
            found = next((m for m in listing.machines if vm.matches(m.instance_id)), None)
            if found is not None:
                vm.report = found
                vm.age = (listing.now - found.last_seen_at).total_seconds()
            if vm.failed_at is None:
                cause = self._cause(vm, now)
                if cause is not None:
                    vm.failed_at, vm.cause = now, cause

    def _cause(self, vm: Vm, now: float) -> str | None:
        booted = now - vm.launched_at
        report = vm.report
        if report is None:
            if booted > self.boot_timeout:
                return f"never called in within --boot-timeout {duration(self.boot_timeout)}"
            return None
        line = report.message or _last_line(report.log_tail) or "no log line"
        if report.stage == HeartbeatStatus.error:
            return f"boot/runner error: {line}"
        if report.stage in BOOTING and booted > self.boot_timeout:
            return f"still at stage {report.stage} after {duration(booted)}: {line}"
        if report.stage in WORKING and vm.age > self.silence_timeout:
            return f"stopped calling in {duration(vm.age)} ago at stage {report.stage}: {line}"
        return None

    def active(self) -> bool:
        return any(not self._gone(v) for v in self.vms)

    @staticmethod
    def _gone(vm: Vm) -> bool:
        finished = vm.report is not None and vm.report.stage == HeartbeatStatus.finished
        return vm.failed_at is not None or finished

    def failed_types(self) -> dict[tuple[str, str], str]:
        """(provider, alias) whose VMs have all failed or finished, at least one failed:
        the failed VMs' cause lines, the last failure first."""
        by_type: dict[tuple[str, str], list[Vm]] = {}
        for vm in self.vms:
            by_type.setdefault((vm.provider, vm.alias), []).append(vm)
        out: dict[tuple[str, str], str] = {}
        for key, group in by_type.items():
            failed = [v for v in group if v.failed_at is not None]
            if failed and all(self._gone(v) for v in group):
                latest = sorted(failed, key=lambda v: v.failed_at or 0.0, reverse=True)
                out[key] = "; ".join(f"VM {v.instance_id} {v.cause}" for v in latest)
        return out

    def to_release(self) -> list[Vm]:
        """Failed VMs that called in (so may hold tasks) and were not released yet."""
        return [v for v in self.failed() if v.report is not None and not v.released]

    def silent_failures(self, provider: str) -> list[Vm]:
        """Failed VMs of this provider that never called in and whose console was not
        read yet: their cause is only on their serial console. Marked read."""
        found = [
            v
            for v in self.failed()
            if v.provider == provider and v.report is None and not v.console_read
        ]
        for vm in found:
            vm.console_read = True
        return found

    def failed(self) -> list[Vm]:
        return [v for v in self.vms if v.failed_at is not None]

    def lines(self) -> list[tuple[str, str, str, str, str]]:
        """Per VM: alias, instance id, stage, since (how long), last line."""
        rows = []
        for vm in self.vms:
            report = vm.report
            if report is None:
                waited = duration(time.monotonic() - vm.launched_at)
                rows.append((vm.alias, vm.instance_id, "launched", waited, "not called in yet"))
                continue
            since = duration(vm.age + (report.last_seen_at - report.stage_since).total_seconds())
            stage = "failed" if vm.failed_at is not None else str(report.stage)
            line = vm.cause if vm.failed_at is not None else report.message
            rows.append((vm.alias, vm.instance_id, stage, since, line or ""))
        return rows


def _last_line(text: str | None) -> str | None:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else None


def vms_from_outputs(provider: str, outputs: dict[str, object]) -> list[Vm]:
    """The `instances` output of a provider stack: {key: {id, alias, ...}}. An Azure VM
    reports its name (the last part of its resource id)."""
    instances = outputs.get("instances")
    if not isinstance(instances, dict):
        return []
    found = []
    for entry in instances.values():
        if isinstance(entry, dict) and entry.get("id") and entry.get("alias"):
            instance_id = str(entry["id"]).rstrip("/").rsplit("/", 1)[-1]
            vm = Vm(provider, str(entry["alias"]), instance_id)
            vm.address = str(entry.get("private_ip") or "") or None
            found.append(vm)
    return found


def debug_hint(vm: Vm, bastion: str, run_id: int | None) -> str:
    """How to reach a VM kept up by --debug."""
    log = "then: sudo tail -n 100 /var/log/cloudbench-runner.log"
    if vm.provider == "aws" and vm.address and bastion:
        where = f"ssh -J {bastion} ubuntu@{vm.address}"
        return f"debug: VM {vm.instance_id} ({vm.alias}): {where}; {log}"
    if vm.provider == "azure":
        group = f"cloudbench-{run_id}" if run_id is not None else "the run's resource group"
        return (
            f"debug: VM {vm.instance_id} ({vm.alias}): az serial-console connect "
            f"-g {group} -n {vm.instance_id} (or SSH from CLOUDBENCH_AZURE_SSH_CIDR); {log}"
        )
    return f"debug: VM {vm.instance_id} ({vm.alias}) is kept up; its address is unknown here"

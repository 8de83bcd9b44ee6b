"""VMs as containers: one podman container per instance moto reports.

A thread polls DescribeInstances. A new pending/running instance gets a container from
the twin's VM image (scripts/standin-vm-image.sh) at the instance's private address on
the twin's network, with an IMDSv2 at 169.254.169.254 in its own network namespace
(imds.py, started with nsenter) and `vm/init` as PID 1, which runs the user-data as
cloud-init would. A container that ends by itself was powered off from inside: the twin
applies the instance's instance_initiated_shutdown_behavior. An instance moto
terminates or stops loses its container.

By default a VM has no container engine (the user-data's `systemctl enable --now docker`
starts nothing), so runners use their host executor with the image's Debian Ruby 3.1.
With --vm-engine the VMs share this machine's engine instead (its socket is the VM's
/var/run/docker.sock): a runner's benchmark containers are siblings of its VM, and its
work directory is mounted at the same path on both sides so its bind mounts mean the
same thing to the engine. The engine's processes are then invisible from the VM, so
every task fails the `engine_off_benchmark_cpus` check and the report excludes it.

--interrupt ALIAS:SECONDS (issue 27): SECONDS after its runner started (as --kill-vm
counts), one VM of the type gets EC2's spot interruption notice in its IMDS
(`spot/instance-action`, `spot/termination-time`), and INTERRUPT_GRACE seconds later
it is reclaimed: its container is killed and moto terminates the instance. EC2 gives
two minutes; the twin gives 30 s (the runner polls every 5 s). The IMDS says
`instance-life-cycle: spot` for an instance moto launched with spot market options, and
its identity document carries `pendingTime` (the launch time), as on EC2.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from cloudbench.platform.cpulease import DEFAULT_DIR, lease_dir
from tests.twin.core import VM_IMAGE as IMAGE

if TYPE_CHECKING:
    from tests.twin.core import Twin

log = logging.getLogger("twin.vms")

HERE = Path(__file__).resolve().parent
SECCOMP = HERE.parents[1] / "src" / "cloudbench" / "runner" / "executors" / "seccomp-aslr.json"
LIVE = ("pending", "running")
# An OS takes a while to boot after EC2 says `running` (a real VM failing at apt needs
# its boot and an `apt-get update`: a minute), and Terraform reads each instance again
# (block devices) after its waiter first sees it running 10 s after launch, which with
# seven instances at once on a busy machine took past 12 s: a VM that powers itself off
# sooner is applied its shutdown behaviour only this long after launch, so that Terraform
# finished with it (at 12 s, a terminated VM's volume was gone: InvalidVolume.NotFound).
EARLIEST_POWER_OFF = 40.0
INTERRUPT_GRACE = 30.0  # EC2 gives 120 s; the runner looks every 5 s


@dataclass
class Vm:
    instance_id: str
    alias: str
    container: str
    directory: Path
    started: float = field(default_factory=time.monotonic)
    imds: subprocess.Popen[bytes] | None = None
    killed: bool = False
    gone: bool = False
    profile: str = ""
    runner: bool = False  # its user-data is a cloudbench runner's
    bench_at: float | None = None  # when a benchmark process first ran in it
    launched: datetime | None = None  # EC2's LaunchTime
    pid: int = 0  # its PID 1, as this machine sees it
    pid_start: str = ""  # that process's start time (/proc/PID/stat): a reused pid is not it

    def running(self) -> bool:
        """Its PID 1 still runs: the container runs (what `podman ps` would say, without
        a podman process every second; each costs this 2-core machine a slice of a second)."""
        return bool(self.pid_start) and _start_time(self.pid) == self.pid_start


def _start_time(pid: int) -> str:
    """A live process's start time (/proc/PID/stat); "" when gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if pid and fields[0] != "Z" else ""


def _spot_reclaimed(iid: str) -> None:
    """EC2's state reason for a reclaimed spot instance (moto says the user ended it)."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import StateReason

    from tests.twin.core import ACCOUNT, REGION

    instance = ec2_backends[ACCOUNT][REGION].get_instance(iid)
    code = "Server.SpotInstanceTermination"
    instance.state_reason = StateReason(f"{code}: Spot instance termination", code)
    instance._reason = "Spot instance termination"


class VmWatcher:
    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.vms: dict[str, Vm] = {}
        self.held: set[str] = set()  # --no-boot instances kept pending
        self.killed_aliases: set[str] = set()  # --kill-vm ends one VM per alias
        self.interrupted_aliases: set[str] = set()  # --interrupt: one VM per alias
        self.notices: dict[str, tuple[str, float]] = {}  # iid -> (notice JSON, reclaim at)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="twin-vms", daemon=True)
        self.ec2 = boto3.client(
            "ec2",
            endpoint_url=twin.endpoint,
            region_name="us-east-1",
            aws_access_key_id="twin",
            aws_secret_access_key="twin",
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for vm in list(self.vms.values()):
            self._remove(vm)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._poll()
            except Exception:  # the twin must keep watching; the log says what failed
                log.exception("VM watcher poll failed")

    def _instances(self) -> list[dict[str, Any]]:
        pages = self.ec2.get_paginator("describe_instances").paginate()
        return [dict(i) for page in pages for r in page["Reservations"] for i in r["Instances"]]

    def _poll(self) -> None:
        for inst in self._instances():
            iid, state = inst["InstanceId"], inst["State"]["Name"]
            alias = next((t["Value"] for t in inst.get("Tags", []) if t["Key"] == "Alias"), "")
            vm = self.vms.get(iid)
            if state in LIVE and alias in self.twin.faults.no_boot:
                self._hold_pending(iid)
            elif state in LIVE and vm is None:
                self._boot(inst, alias)
            elif state in LIVE and vm is not None and not vm.gone:
                self._refresh(vm, inst)
            elif state not in LIVE and vm is not None and not vm.gone:
                log.info("%s is %s: removing its VM", iid, state)
                self._remove(vm)
        alive = [vm for vm in self.vms.values() if not vm.gone]
        running = {vm.container for vm in alive if vm.running()}
        for vm in alive:
            self._check(vm, running)

    def _hold_pending(self, iid: str) -> None:
        """--no-boot: the instance never leaves `pending` and nothing boots."""
        from moto.ec2.models import ec2_backends

        from tests.twin.calls import MOTO
        from tests.twin.core import ACCOUNT, REGION

        with MOTO:
            instance = ec2_backends[ACCOUNT][REGION].get_instance(iid)
            instance._state.name, instance._state.code = "pending", 0
        if iid not in self.held:
            self.held.add(iid)
            log.info("%s held pending (--no-boot)", iid)

    def _boot(self, inst: dict[str, Any], alias: str) -> None:
        iid = inst["InstanceId"]
        directory = self.twin.state_dir / "vms" / iid
        work = directory / "work"
        work.mkdir(parents=True, exist_ok=True)
        (directory / "imds.json").write_text(json.dumps(self._imds_doc(inst)))
        name = f"{self.twin.name}-{iid}"
        # AWS_ENDPOINT_URL stands for the AWS endpoints a VPC reaches; credentials come
        # from the IMDS (the instance role), as on EC2.
        env = {**self.twin.faults.vm_env, "AWS_ENDPOINT_URL": self.twin.endpoint}
        engine: list[str] = []
        if self.twin.faults.vm_engine:
            env["CLOUDBENCH_WORK_DIR"] = str(work)
            engine = ["-v", "/run/podman/podman.sock:/var/run/docker.sock", "-v", f"{work}:{work}"]
        stage = self.twin.faults.fail_boot.get(alias)
        if stage:
            env["TWIN_FAIL_BOOT"] = stage
            if stage == "pip":  # the runner's pip install fails (a constraint it cannot read)
                env["PIP_CONSTRAINT"] = "/nonexistent-twin-fail-boot"
        shared = lease_dir()
        shared.mkdir(parents=True, exist_ok=True)  # its runners make it 1777 on first use
        command = [
            "podman",
            "run",
            "-d",
            "--name",
            name,
            "--hostname",
            iid,
            "--network",
            self.twin.name,
            "--ip",
            inst["PrivateIpAddress"],
            "--label",
            f"cloudbench-twin={self.twin.name}",
            # The project's own profile: the default one refuses the personality call
            # `setarch -R` (ASLR off) needs, which a real VM allows.
            "--security-opt",
            f"seccomp={SECCOMP}",
            "-v",
            f"{HERE / 'vm'}:/twin:ro",
            "-v",
            f"{directory}:/twin-vm",
            # Every twin VM runs on this machine's CPUs: they share its machine-wide CPU
            # leases, so their benchmarks take turns with every other cloudbench benchmark
            # here instead of being someone's `taskset` on its CPUs.
            "-v",
            f"{shared}:{DEFAULT_DIR}",
            *engine,
            *[a for k, v in env.items() for a in ("-e", f"{k}={v}")],
            IMAGE,
            "/twin/init",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        vm = Vm(
            iid, alias, name, directory, profile=inst.get("IamInstanceProfile", {}).get("Arn", "")
        )
        vm.launched = inst.get("LaunchTime")
        doc = json.loads((directory / "imds.json").read_text())
        vm.runner = b"cloudbench runner bootstrap" in base64.b64decode(
            doc.get("user-data-base64", "")
        )
        self.vms[iid] = vm
        if result.returncode != 0:
            log.error("%s: podman run failed: %s", iid, result.stderr.strip())
            vm.gone = True
            return
        pid = subprocess.run(
            ["podman", "inspect", "-f", "{{.State.Pid}}", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        vm.pid = int(pid)
        vm.pid_start = _start_time(vm.pid)
        for args in (
            ["link", "set", "lo", "up"],
            ["addr", "add", "169.254.169.254/32", "dev", "lo"],
        ):
            subprocess.run(["nsenter", "-t", pid, "-n", "ip", *args], check=True)
        with (directory / "imds.log").open("ab") as imds_log:
            vm.imds = subprocess.Popen(
                [
                    "nsenter",
                    "-t",
                    pid,
                    "-n",
                    sys.executable,
                    str(HERE / "imds.py"),
                    str(directory / "imds.json"),
                ],
                stdout=imds_log,
                stderr=imds_log,
                stdin=subprocess.DEVNULL,
            )
        log.info(
            "%s (%s) booted as container %s at %s",
            iid,
            alias or "-",
            name,
            inst["PrivateIpAddress"],
        )

    def _refresh(self, vm: Vm, inst: dict[str, Any]) -> None:
        """Terraform may attach the instance profile after launch: the IMDS follows."""
        profile = inst.get("IamInstanceProfile", {}).get("Arn", "")
        if profile != vm.profile:
            vm.profile = profile
            doc = json.dumps(self._imds_doc(inst))
            tmp = vm.directory / "imds.json.tmp"
            tmp.write_text(doc)
            tmp.replace(vm.directory / "imds.json")
            log.info("%s: instance profile %s", vm.instance_id, profile or "(none)")

    def _imds_doc(self, inst: dict[str, Any]) -> dict[str, Any]:
        iid = inst["InstanceId"]
        raw = self.ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")
        user_data = raw.get("UserData", {}).get("Value", "")
        zone = inst["Placement"]["AvailabilityZone"]
        spot = inst.get("InstanceLifecycle") == "spot"  # moto: launched with market options
        meta = {
            "instance-id": iid,
            "instance-type": inst["InstanceType"],
            "ami-id": inst["ImageId"],
            "placement/region": zone[:-1],
            "placement/availability-zone": zone,
            "local-ipv4": inst["PrivateIpAddress"],
            "instance-life-cycle": "spot" if spot else "on-demand",
            "hostname": iid,
        }
        profile = inst.get("IamInstanceProfile", {}).get("Arn", "")
        if profile:
            role = profile.rsplit("/", 1)[-1]
            expires = datetime.now(UTC) + timedelta(hours=6)
            meta["iam/security-credentials/" + role] = json.dumps(
                {
                    "Code": "Success",
                    "Type": "AWS-HMAC",
                    "AccessKeyId": f"ASIATWIN{iid[-8:]}",
                    "SecretAccessKey": "twin",
                    "Token": "twin",
                    "LastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
            meta["iam/info"] = json.dumps({"Code": "Success", "InstanceProfileArn": profile})
        doc: dict[str, Any] = {"meta-data": meta}
        if user_data:
            doc["user-data-base64"] = user_data
        launched = inst.get("LaunchTime")
        doc["identity"] = {"instanceId": iid, "region": zone[:-1], "availabilityZone": zone}
        if isinstance(launched, datetime):
            doc["identity"]["pendingTime"] = launched.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        notice = self.notices.get(iid)
        if notice is not None:
            meta["spot/instance-action"] = notice[0]
            meta["spot/termination-time"] = json.loads(notice[0])["time"]
        return doc

    def _interrupt(self, vm: Vm) -> None:
        """--interrupt: the notice first, the reclaim INTERRUPT_GRACE s later."""
        after = self.twin.faults.interrupt.get(vm.alias)
        iid = vm.instance_id
        if (
            after is not None
            and iid not in self.notices
            and vm.alias not in self.interrupted_aliases
            and time.monotonic() - self._kill_clock(vm) > after
        ):
            self.interrupted_aliases.add(vm.alias)
            at = datetime.now(UTC) + timedelta(seconds=INTERRUPT_GRACE)
            notice = json.dumps({"action": "terminate", "time": at.strftime("%Y-%m-%dT%H:%M:%SZ")})
            self.notices[iid] = (notice, time.monotonic() + INTERRUPT_GRACE)
            path = vm.directory / "imds.json"
            doc = json.loads(path.read_text())
            doc["meta-data"]["spot/instance-action"] = notice
            doc["meta-data"]["spot/termination-time"] = json.loads(notice)["time"]
            tmp = vm.directory / "imds.json.tmp"
            tmp.write_text(json.dumps(doc))
            tmp.replace(path)
            log.info("%s: spot interruption notice, reclaimed at %s (--interrupt)", iid, at)
        found = self.notices.get(iid)
        if found is not None and time.monotonic() >= found[1] and not vm.killed:
            log.info("%s reclaimed (spot interruption, --interrupt)", iid)
            vm.killed = True
            subprocess.run(["podman", "kill", vm.container], capture_output=True, check=False)

    def _check(self, vm: Vm, running: set[str]) -> None:
        self._interrupt(vm)
        kill_after = self.twin.faults.kill_vm.get(vm.alias)
        if (
            kill_after is not None
            and vm.alias not in self.killed_aliases
            and time.monotonic() - self._kill_clock(vm) > kill_after
        ):
            # One VM of the type, as when a single instance is reclaimed or crashes.
            log.info(
                "%s killed %.0fs after its benchmark started (--kill-vm)",
                vm.instance_id,
                kill_after,
            )
            vm.killed = True
            self.killed_aliases.add(vm.alias)
            subprocess.run(["podman", "kill", vm.container], capture_output=True, check=False)
        if vm.killed:
            running.discard(vm.container)
        if vm.container in running or (not vm.killed and self._too_early(vm)):
            return
        self._remove(vm)
        if vm.killed or not (vm.directory / "shutdown").is_file():
            log.info("%s vanished: terminating it in moto", vm.instance_id)
            self.ec2.terminate_instances(InstanceIds=[vm.instance_id])
            if vm.instance_id in self.notices:
                _spot_reclaimed(vm.instance_id)
            return
        attr = self.ec2.describe_instance_attribute(
            InstanceId=vm.instance_id, Attribute="instanceInitiatedShutdownBehavior"
        )
        behaviour = attr.get("InstanceInitiatedShutdownBehavior", {}).get("Value", "stop")
        log.info(
            "%s powered off: %s (instance_initiated_shutdown_behavior)", vm.instance_id, behaviour
        )
        if behaviour == "terminate":
            self.ec2.terminate_instances(InstanceIds=[vm.instance_id])
        else:
            self.ec2.stop_instances(InstanceIds=[vm.instance_id])

    def _kill_clock(self, vm: Vm) -> float:
        """--kill-vm counts from the first benchmark process in the VM (ruby-bench's
        run_benchmarks.rb), so the VM killed is one that holds a task; a VM whose
        user-data is not a runner's counts from boot."""
        if vm.bench_at is None:
            if not vm.runner:
                vm.bench_at = vm.started
            elif vm.pid and _runs_benchmark(vm.pid):
                vm.bench_at = time.monotonic()
                log.info("%s: a benchmark runs in it", vm.instance_id)
        return vm.bench_at if vm.bench_at is not None else float("inf")

    @staticmethod
    def _too_early(vm: Vm) -> bool:
        if vm.launched is None:
            return False
        return (datetime.now(UTC) - vm.launched).total_seconds() < EARLIEST_POWER_OFF

    def _remove(self, vm: Vm) -> None:
        vm.gone = True
        if vm.imds is not None:
            vm.imds.terminate()
            try:
                vm.imds.wait(timeout=5)
            except subprocess.TimeoutExpired:
                vm.imds.kill()
        subprocess.run(
            ["podman", "rm", "-f", "-t", "2", vm.container], capture_output=True, check=False
        )


def _runs_benchmark(root: int) -> bool:
    """Whether a process under `root` (a VM's PID 1) runs ruby-bench's run_benchmarks.rb."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != root:
            ancestor = parents.get(ancestor)
        if ancestor != root:
            continue
        try:
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        if b"run_benchmarks.rb" in cmdline:
            return True
    return False

"""The cloud provider: per-run Terraform stacks that launch runner instances.

The meta deployment (orchestrator, network, bucket; in AWS) is applied before the run
exists; once it does, `start` applies every provider stack of the run in parallel — aws
and/or azure, plus the local stack when local runners take part — and `stop` destroys them
again. Runners on instances report to the orchestrator directly, so there is nothing to
poll here: they report their boot stages to the orchestrator, and `observe` follows
them (master/vms.py) so that a type whose VMs all failed stops the run.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console

from cloudbench.master import wheelpack
from cloudbench.master.capacity import CapacityError, CapacityPlan, check_aws, subnet_for
from cloudbench.master.costplan import lifetime_minutes
from cloudbench.master.ec2_states import Ec2States
from cloudbench.master.ledger import CostMeter
from cloudbench.master.progress import StackView
from cloudbench.master.providers import azure, image, suite
from cloudbench.master.providers.allowlist import AllowList
from cloudbench.master.providers.base import (
    MachineRow,
    ProviderContext,
    ProviderError,
    RunnerOptions,
    StopRun,
)
from cloudbench.master.replace import RECLAIM_WAIT, all_reclaimed, replace_spot, terminated
from cloudbench.master.spot import price_spot
from cloudbench.master.stacks import MetaDeployment, MetaOutputs, failure, module_dir
from cloudbench.master.vms import VmWatch, debug_hint, vms_from_outputs
from cloudbench.platform.azure import AzureSettings
from cloudbench.platform.azure import load_settings as azure_settings
from cloudbench.platform.stacks import Stack
from cloudbench.platform.terraform import TerraformError
from cloudbench.platform.timefmt import duration
from cloudbench.protocol import MachineList, RunSpec

logger = logging.getLogger(__name__)

MODULES = {"aws": "providers/aws", "azure": "providers/azure", "local": "providers/local"}
CLOUDS = ("aws", "azure")
# Terraform's AWS provider, when an instance stays pending past its create timeout.
STUCK_PENDING = "timeout while waiting for state to become 'running'"
APPLIED = ".cloudbench-applied"  # in a stack's working copy once its apply succeeded


class StackDriver:
    name = "cloud"

    def __init__(self, meta: MetaDeployment, console: Console, logs_dir: Path) -> None:
        self.meta, self.console, self.logs_dir = meta, console, logs_dir
        self.stacks: list[Stack] = []
        self.azure: AzureSettings | None = None
        self.sizes: dict[str, azure.SizeFacts] = {}
        self.max_lifetime_minutes: int | None = None  # from the budget's max_hours
        # Set by the CLI: launch/termination times, the budget watch and the cost ledger.
        self.meter: CostMeter | None = None
        self.results_dir: Path | None = None
        self.run_id: int | None = None
        self.options = RunnerOptions()
        self.vms: VmWatch | None = None  # once the run's stacks are applied
        self.ec2: Ec2States | None = None  # AWS: instances EC2 says are gone
        self.ruby_bench: str | None = None
        self.replaced: set[str] = set()  # aliases whose reclaimed spot VMs were replaced
        self.reclaim_seen: dict[str, float] = {}  # alias -> when all its VMs were reclaimed
        self.capacity: CapacityPlan | None = None  # AWS: zone per type, quotas checked

    def check(self, spec: RunSpec, options: RunnerOptions, *, resumed: int | None = None) -> None:
        self.options = options
        self.ruby_bench = options.ruby_bench
        if spec.aws or spec.azure:
            suite.check(options.ruby_bench)
            if self.meta.settings.share_image:
                image.check(spec, options.ruby_bench)
        if spec.budget is not None and spec.budget.max_hours is not None:
            self.max_lifetime_minutes = lifetime_minutes(spec)
        if spec.azure:
            # Before the meta stack: credentials and sizes are one line, not a torn-down run.
            self.azure = azure_settings()
            azure.check_settings(self.azure)
            wanted = sorted({s.instance_type for s in spec.azure})
            self.sizes = azure.size_facts(self.azure, wanted)
            for line in azure.capacity(self.azure, self.sizes, spec):
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        self.meta.check()
        if spec.aws:
            self.capacity = self._capacity(spec, resumed)
        if spec.aws or spec.azure:
            self.meta.prepare_wheelhouses()  # runner VMs install from it (Azure: its pins)
        for name in self._names(spec):
            module_dir(self.meta.settings, MODULES[name])

    def _capacity(self, spec: RunSpec, resumed: int | None) -> CapacityPlan:
        """Before the meta stack: a type no zone offers, or too few vCPUs, is one line."""
        pending = not self.meta.reuse and not self.meta.deployed()
        try:
            plan = check_aws(spec, self.meta.settings.region, meta_pending=pending, own_run=resumed)
        except CapacityError as exc:
            raise ProviderError(str(exc)) from None
        for line in plan.describe():
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        return plan

    @staticmethod
    def _names(spec: RunSpec) -> list[str]:
        return [c for c in CLOUDS if getattr(spec, c)] + (["local"] if spec.local else [])

    def start(self, ctx: ProviderContext) -> None:
        outputs = self.meta.outputs
        if outputs is None:
            raise ProviderError("the AWS provider needs the meta deployment's outputs first")
        self.run_id = ctx.run_id
        silence = 4 * self._interval()
        self.vms = VmWatch(self.options.boot_timeout, silence)
        self.stacks = [self._stack(ctx, outputs, name) for name in self._names(ctx.spec)]
        applied = [s for s in self.stacks if ctx.resumed and (s.workdir / APPLIED).is_file()]
        for stack in applied:
            logger.info("resume: stack %s is applied already; not applying it again", stack.name)
            self._launched(stack)
        errors = self._each("apply", skip={s.name for s in applied})
        if errors:
            self.meta.failed = True
            raise ProviderError("\n".join(str(e) for e in errors))

    def _stack(self, ctx: ProviderContext, out: MetaOutputs, name: str) -> Stack:
        settings = self.meta.settings
        workdir = settings.root() / "runs" / str(ctx.run_id) / name
        log_path = self.logs_dir / str(ctx.run_id) / f"{name}.log"
        variables: dict[str, object] = {"run_id": str(ctx.run_id)}
        if name == "aws":
            types = [
                {
                    "instance_type": s.instance_type,
                    "alias": s.effective_alias,
                    "instances": ctx.spec.counts(s).instances,
                    "capacity": ctx.spec.capacity_of("aws", s),
                    "max_price": ctx.spec.max_price_of(s),
                    "subnet_id": self._subnet(out, s.instance_type),
                }
                for s in ctx.instance_types("aws")
            ]
            variables.update(
                instance_types=types,
                instances=ctx.spec.per_instance_type.instances,
                orchestrator_url=out.private_url or out.url,
                subnet_id=out.subnet_id,
                orchestrator_tls_cert=out.pin_for(out.private_url or out.url) or "",
                region=out.region,
                runner_token=ctx.runner_token,
                bucket=out.bucket,
                boot_timeout_seconds=int(self.options.boot_timeout),
            )
            # The runners install this master's wheel and what it imports from it.
            variables["wheelhouse_arches"] = self.meta.ship(workdir, runner=True)
            if self.ruby_bench:
                # Shipped through the bucket: the runners never clone ruby-bench.
                suite.pack(self.ruby_bench, workdir / "ruby-bench.tar.gz")
                variables["ship_ruby_bench"] = True
                if settings.share_image:
                    variables["benchmark_image"] = self._image(ctx, workdir)
        if name == "azure":
            variables.update(self._azure_variables(ctx, out))
            if self.ruby_bench:
                # Through the orchestrator (Azure VMs hold no AWS credentials for the bucket).
                variables["ruby_bench_sha256"] = suite.ship(
                    self.ruby_bench, workdir / "ruby-bench.tar.gz", ctx.api, ctx.run_id
                )
        if self.max_lifetime_minutes is not None and name in CLOUDS:
            variables["max_lifetime_minutes"] = self.max_lifetime_minutes
        if self.options.debug and name in CLOUDS:
            variables["debug"] = True
        if self.options.heartbeat_interval and name in CLOUDS:
            # The VM watch counts four missed reports as silence (master/vms.py).
            variables["heartbeat_interval"] = self._interval()
        return Stack(name, workdir, log_path, settings, dict(variables))

    def _subnet(self, out: MetaOutputs, instance_type: str) -> str:
        zone = self.capacity.zones.get(instance_type) if self.capacity else None
        try:
            return subnet_for(zone, out.zone_subnets, out.subnet_id, instance_type)
        except CapacityError as exc:
            raise ProviderError(str(exc)) from None

    def _image(self, ctx: ProviderContext, workdir: Path) -> dict[str, str]:
        self.console.print("building the run's benchmark image (CLOUDBENCH_AWS_SHARE_IMAGE) …")
        made = image.build(ctx.spec, workdir / "ruby-bench.tar.gz", workdir)
        self.console.print(
            f"benchmark image for {made['arch']}: built in {made['build_seconds']} s, "
            f"{made['image_id']}; {made['arch']} runners load it",
            markup=False,
            soft_wrap=True,
        )
        return {k: made[k] for k in ("arch", "file", "ruby_image_digest")}

    def _azure_variables(self, ctx: ProviderContext, out: MetaOutputs) -> dict[str, object]:
        assert self.azure is not None
        pins = wheelpack.runner_versions(self.meta.settings, self.meta.wheelhouses)
        return azure.stack_variables(self.azure, self.sizes, ctx, out, pins)

    def _each(self, action: str, skip: set[str] | None = None) -> list[ProviderError]:
        """Run `action` on every stack at once; the errors of those that failed."""
        stacks = [s for s in self.stacks if s.name not in (skip or set())]
        if not stacks:
            return []
        with (
            StackView(self.console, [s.name for s in stacks]) as view,
            ThreadPoolExecutor(len(stacks)) as pool,
        ):
            results = list(pool.map(lambda s: self._one(view, s, action), stacks))
        return [r for r in results if r is not None]

    def _one(self, view: StackView, stack: Stack, action: str) -> ProviderError | None:
        view.set(stack.name, "applying …" if action == "apply" else "destroying …")
        try:
            if action == "apply":
                stack.prepare(module_dir(self.meta.settings, MODULES[stack.name]))
                try:
                    if stack.name == "azure":
                        # Its NAT address, before its VMs boot.
                        assert self.meta.outputs is not None and self.run_id is not None
                        azure.admit_nat(stack, self.meta.outputs, self.run_id, self.console)
                    stack.apply()
                finally:  # a failed apply may still have launched some VMs
                    if self.meter is not None and stack.name in CLOUDS:
                        self.meter.launch(stack.name)
                (stack.workdir / APPLIED).write_text("applied\n")  # what a resume skips
                self._launched(stack)
            else:
                stack.destroy()
                (stack.workdir / APPLIED).unlink(missing_ok=True)
                if self.meter is not None:
                    self.meter.terminate(stack.name)
        except ProviderError as exc:
            view.set(stack.name, f"failed (log {stack.log_path})")
            return exc
        except (TerraformError, OSError) as exc:
            view.set(stack.name, f"failed (log {stack.log_path})")
            if isinstance(exc, TerraformError):
                hint = self._hint(stack, exc)
                if hint:
                    return ProviderError(f"{hint} (log {stack.log_path})")
                return failure(stack.name, stack.log_path, exc)
            return ProviderError(f"stack {stack.name}: {exc}")
        view.set(stack.name, "applied" if action == "apply" else "destroyed")
        return None

    def _hint(self, stack: Stack, exc: TerraformError) -> str | None:
        if stack.name == "aws" and STUCK_PENDING in (exc.log_tail or ""):
            return (
                f"stack aws: a VM never called in within --boot-timeout "
                f"{duration(self.options.boot_timeout)}: EC2 kept it pending"
            )
        if stack.name != "azure" or self.azure is None:
            return None
        return azure.quota_hint(exc.log_tail, self.azure.location)

    def poll(self) -> list[str]:
        reason = self.meter.over_budget() if self.meter is not None else None
        if reason:
            raise StopRun(reason)
        return []

    def _interval(self) -> float:
        """Seconds between a cloud runner's reports (the stacks allow 1 to 300)."""
        return max(1.0, min(300.0, self.options.heartbeat_interval or 30.0))

    def _kept_for_debug(self) -> set[str]:
        if not self.options.debug or self.vms is None:
            return set()
        failed = self.vms.failed()
        out = self.meta.outputs
        for vm in failed:
            self.console.print(
                debug_hint(vm, out.bastion if out else "", self.run_id),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        kept = {vm.provider for vm in failed}
        if kept:
            self.console.print(
                f"debug: kept stack(s) {', '.join(sorted(kept))}; remove them with "
                f"`cloudbench nuke --run-id {self.run_id}`",
                markup=False,
                soft_wrap=True,
            )
        return kept

    def _launched(self, stack: Stack) -> None:
        """Which VMs the stack launched, so that one that never calls in is noticed."""
        if stack.name not in CLOUDS or self.vms is None:
            return
        try:
            outputs = stack.terraform().output()
        except TerraformError as exc:  # the watch then relies on the reports alone
            logger.warning("stack %s: cannot read its instances: %s", stack.name, exc)
            return
        self.vms.launched(vms_from_outputs(stack.name, outputs))
        if stack.name == "aws" and self.meta.outputs is not None:
            prices, lines = price_spot(outputs, self.meta.outputs.region)
            if self.meter is not None:
                self.meter.spot.update(prices)
            for line in lines:
                self.console.print(line, markup=False, soft_wrap=True)

    def observe(self, machines: MachineList) -> list[MachineRow]:
        if self.vms is None:
            return []
        self.vms.update(machines)
        out = self.meta.outputs
        if out is not None and any(s.name == "aws" for s in self.stacks):
            self.ec2 = self.ec2 or Ec2States(out.region)
            self.vms.vanished(self.ec2.gone(self.vms.pending_ids("aws")))
            for vm in self.vms.silent_failures("aws"):
                line = self.ec2.console_cause(vm.instance_id)
                if line:
                    vm.cause = f"{vm.cause}; {line}"
        return self.vms.lines()

    def lost(self) -> list[tuple[str, str]]:
        """Failed VMs whose tasks the orchestrator should hand to another VM now."""
        found = self.vms.to_release() if self.vms is not None else []
        for vm in found:
            vm.released = True
        return [(vm.instance_id, vm.cause or "failed") for vm in found]

    def active(self) -> bool:
        # Until the stacks are applied and their VMs known, count them as working.
        if self.vms is None or not self.vms.vms:
            return bool(self.stacks)
        return self.vms.active()

    def exited(self) -> dict[tuple[str, str], str]:
        return self.vms.failed_types() if self.vms is not None else {}

    def replace(self, provider: str, alias: str) -> bool:
        """A spot type whose VMs were all reclaimed with work left: new VMs, once."""
        stack = next((s for s in self.stacks if s.name == provider == "aws"), None)
        out = self.meta.outputs
        if stack is None or self.vms is None or out is None or alias in self.replaced:
            return False
        group = [v for v in self.vms.vms if v.alias == alias and v.provider == "aws"]
        if not all_reclaimed(group):
            return False
        since = self.reclaim_seen.setdefault(alias, time.monotonic())
        if not terminated(out.region, [v.instance_id for v in group]):
            return time.monotonic() - since < RECLAIM_WAIT  # True: still waiting for EC2
        self.replaced.add(alias)
        done = replace_spot(stack, alias)
        if done is None:
            return False
        self.console.print(done.line, markup=False, soft_wrap=True)
        if self.meter is not None:
            self.meter.replaced(provider, done.instance_type, done.vms, done.capacity, done.line)
        self._launched(stack)
        return True

    def stop(self, hurry: bool = False) -> None:
        """Destroy the run's stacks (meta stays for the next run); hurry or not: it costs.

        With --debug, a cloud stack with a failed VM is kept: the VM stays up until its
        hard lifetime, `cloudbench nuke --run-id` removes the rest."""
        kept = self._kept_for_debug()
        errors = self._each("destroy", skip=kept)
        out = self.meta.outputs
        azure_gone = any(s.name == "azure" for s in self.stacks) and "azure" not in kept
        if azure_gone and out is not None and out.runner_nat_group and self.run_id is not None:
            # Also after a resume, which admitted nothing itself: the entry is the run's.
            AllowList(out.region, out.runner_nat_group).revoke(self.run_id)
        for error in errors:
            logger.error("%s", error)
        if errors:
            self.meta.failed = True
        if self.meter is not None and self.results_dir is not None and self.run_id is not None:
            self.meter.write(self.results_dir, self.run_id)
        self.stacks = []

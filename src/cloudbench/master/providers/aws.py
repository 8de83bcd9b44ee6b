"""The AWS provider: per-run Terraform stacks that launch runner instances.

The meta deployment (orchestrator, network, bucket) is applied before the run exists; once
it does, `start` applies every provider stack of the run in parallel — aws, plus the local
stack when local runners take part — and `stop` destroys them again. Runners on instances
report to the orchestrator directly, so there is nothing to poll here.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console

from cloudbench.master.progress import StackView
from cloudbench.master.providers.base import ProviderContext, ProviderError, RunnerOptions
from cloudbench.master.stacks import MetaDeployment, MetaOutputs, failure, module_dir
from cloudbench.platform.stacks import Stack
from cloudbench.platform.terraform import TerraformError
from cloudbench.protocol import RunSpec

logger = logging.getLogger(__name__)

MODULES = {"aws": "providers/aws", "local": "providers/local"}


class AwsProvider:
    name = "aws"

    def __init__(self, meta: MetaDeployment, console: Console, logs_dir: Path) -> None:
        self.meta, self.console, self.logs_dir = meta, console, logs_dir
        self.stacks: list[Stack] = []

    def check(self, spec: RunSpec, options: RunnerOptions) -> None:
        self.meta.check()
        for name in self._names(spec):
            module_dir(self.meta.settings, MODULES[name])

    @staticmethod
    def _names(spec: RunSpec) -> list[str]:
        return ["aws"] + (["local"] if spec.local else [])

    def start(self, ctx: ProviderContext) -> None:
        outputs = self.meta.outputs
        if outputs is None:
            raise ProviderError("the AWS provider needs the meta deployment's outputs first")
        self.stacks = [self._stack(ctx, outputs, name) for name in self._names(ctx.spec)]
        errors = self._each("apply")
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
                {"instance_type": s.instance_type, "alias": s.effective_alias}
                for s in ctx.instance_types("aws")
            ]
            variables.update(
                instance_types=types, instances=ctx.spec.per_instance_type.instances,
                orchestrator_url=out.private_url or out.url, subnet_id=out.subnet_id,
                region=out.region, runner_token=ctx.runner_token,
            )  # fmt: skip
        return Stack(name, workdir, log_path, settings, dict(variables))

    def _each(self, action: str) -> list[ProviderError]:
        """Run `action` on every stack at once; the errors of those that failed."""
        if not self.stacks:
            return []
        with (
            StackView(self.console, [s.name for s in self.stacks]) as view,
            ThreadPoolExecutor(len(self.stacks)) as pool,
        ):
            results = list(pool.map(lambda s: self._one(view, s, action), self.stacks))
        return [r for r in results if r is not None]

    def _one(self, view: StackView, stack: Stack, action: str) -> ProviderError | None:
        view.set(stack.name, "applying …" if action == "apply" else "destroying …")
        try:
            if action == "apply":
                stack.prepare(module_dir(self.meta.settings, MODULES[stack.name]))
                stack.apply()
            else:
                stack.destroy()
        except (TerraformError, OSError) as exc:
            view.set(stack.name, f"failed (log {stack.log_path})")
            if isinstance(exc, TerraformError):
                return failure(stack.name, stack.log_path, exc)
            return ProviderError(f"stack {stack.name}: {exc}")
        view.set(stack.name, "applied" if action == "apply" else "destroyed")
        return None

    def poll(self) -> list[str]:
        return []

    def active(self) -> bool:
        # Instances cannot be watched from here; the orchestrator times out silent runners.
        return bool(self.stacks)

    def stop(self, hurry: bool = False) -> None:
        """Destroy the run's stacks (meta stays for the next run); hurry or not: it costs."""
        errors = self._each("destroy")
        for error in errors:
            logger.error("%s", error)
        if errors:
            self.meta.failed = True
        self.stacks = []

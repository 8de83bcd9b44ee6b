"""What a task records about how it was measured: environment, noise, neighbours, checks."""

from __future__ import annotations

import os
from pathlib import Path

from cloudbench.protocol import TaskAssignment
from cloudbench.runner.concurrency import Concurrency
from cloudbench.runner.environment import unexpected_keys
from cloudbench.runner.executors.base import ExecutionResult, Provisioned
from cloudbench.runner.machine_state import (
    NoiseSample,
    load_average,
    noise_between,
    sample_noise,
)
from cloudbench.runner.metadata import TaskFacts, utc_now
from cloudbench.runner.output import ResultFormatError, Timeline, read_result_json
from cloudbench.runner.slots import Slot, SlotPlan
from cloudbench.runner.verify import Verification, verify_file


class Provenance:
    def __init__(
        self, task: TaskAssignment, slot: Slot, plan: SlotPlan | None, concurrency: Concurrency
    ) -> None:
        self.task, self.slot, self.concurrency = task, slot, concurrency
        self.timeline = Timeline(task.benchmarks.executables)
        self.facts = TaskFacts(started_at=utc_now(), env_configured=dict(task.benchmarks.env))
        if plan is not None:
            self.facts.sharing_slots = plan.sharing(slot.index)
            self.facts.foreign_siblings = list(plan.foreign[slot.index])
        self._noise: NoiseSample | None = None
        self._load: list[float] | None = None

    def chosen_env(self, pass_env: list[str]) -> dict[str, str]:
        """--pass-env names from the runner's environment, then benchmarks.env (wins)."""
        chosen = {k: os.environ[k] for k in pass_env if k in os.environ}
        chosen.update(self.task.benchmarks.env)
        self.facts.env_configured = chosen
        return chosen

    def on_line(self, line: str) -> None:
        self.timeline.feed(line, utc_now())

    def start(self) -> None:
        self.concurrency.begin(self.slot.index, self.task.id)
        self._noise, self._load = sample_noise(self.slot.cpus), load_average()

    def stop(self, provisioned: Provisioned | None, result: ExecutionResult | None) -> None:
        f = self.facts
        f.concurrent = self.concurrency.end(self.slot.index, self.task.id)
        if self._noise is not None:
            seconds = result.duration if result else 0.0
            end = sample_noise(self.slot.cpus)
            f.noise = {"load_average_start": self._load,
                       **noise_between(self._noise, end, seconds)}  # fmt: skip
        f.timeline = self.timeline.close(utc_now())
        if result is not None:
            image = provisioned is not None and provisioned.image_id is not None
            f.env_unexpected = unexpected_keys(result.environment, f.env_configured, image)

    def verify(self, path: Path, ruby: str) -> Verification | None:
        """ASLR and YJIT/interp from ruby-bench's own records (None: no usable output)."""
        try:
            read_result_json(path)
        except ResultFormatError:
            return None  # the result check reports it
        self.facts.verification = verify_file(path, self.task.benchmarks.executables, ruby)
        return self.facts.verification

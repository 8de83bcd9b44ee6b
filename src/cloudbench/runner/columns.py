"""A task's columns: every (Ruby, executable) it runs, under ruby-bench's executable names.

One ruby-bench process runs them all (`-e "LABEL::RUBY FLAGS"`, interleaved by
benchmark) where one process can reach every Ruby (the host executor); in containers
(one Ruby per image) the task alternates its Rubies by benchmark, one process per
(Ruby, benchmark) (runner/alternate.py). Either way every ratio between two columns is
paired within the task: the same machine, the same minutes. With one Ruby the labels
are the executable names ("yjit", "yjit-64m"); with several, "NAME@RUBY" ("zjit@4.0").
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from cloudbench.protocol import TaskAssignment
from cloudbench.protocol.executables import ExecutableSpec, column_label
from cloudbench.runner.executors.base import Provisioned


@dataclass(frozen=True)
class Column:
    label: str  # ruby-bench's executable name
    ruby_version: str  # as requested
    spec: ExecutableSpec

    @property
    def jit(self) -> str:
        return self.spec.jit


def task_columns(task: TaskAssignment) -> list[Column]:
    rubies = task.rubies
    several = len(rubies) > 1
    return [
        Column(column_label(ruby, spec.name, several), ruby, spec)
        for ruby in rubies
        for spec in task.benchmarks.columns()
    ]


def labels(task: TaskAssignment) -> list[str]:
    return [c.label for c in task_columns(task)]


def jits(task: TaskAssignment) -> dict[str, str]:
    """label → engine (interp, yjit, zjit), what verify.py checks each label against."""
    return {c.label: c.jit for c in task_columns(task)}


def ruby_command(provisioned: Provisioned) -> str:
    """The Ruby as ruby-bench starts it: the image's `ruby` in a container, else the path."""
    return "ruby" if provisioned.image_id is not None else provisioned.ruby


def executable_args(
    task: TaskAssignment, provisioned: dict[str, Provisioned], ruby: str | None = None
) -> list[str]:
    """`-e` values for ruby-bench: `LABEL::RUBY FLAGS` (it shell-splits after `::`), for
    every column, or only those of one Ruby (`ruby`, as requested)."""
    out = []
    for column in task_columns(task):
        if ruby is not None and column.ruby_version != ruby:
            continue
        command = shlex.quote(ruby_command(provisioned[column.ruby_version]))
        out.append(" ".join([f"{column.label}::{command}", *column.spec.flags]))
    return out

"""`benchmarks.executables`: the engines a run compares, plain or tuned.

Config files list `"interp"`, `"yjit"`, `"zjit"` (the engine, named after itself) or
objects `{"name": "yjit-64m", "jit": "yjit", "options": ["--yjit-mem-size=64"]}`. Plain
strings stay strings in every dump, so configs and stored runs from before keep their
exact shape; `columns()` gives the normalised list.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloudbench.protocol.errors import describe

Jit = Literal["interp", "yjit", "zjit"]
JITS: tuple[str, ...] = ("interp", "yjit", "zjit")
# What the Ruby prints in RUBY_DESCRIPTION when the engine is on, and its module.
ENGINE_MARK = {"yjit": "+YJIT", "zjit": "+ZJIT"}
ENGINE_MODULE = {"yjit": "RubyVM::YJIT", "zjit": "RubyVM::ZJIT"}
# One option, shell-safe (ruby-bench shell-splits the command after `::`).
OPTION = re.compile(r"^--(yjit|zjit)-[a-z0-9][a-z0-9-]*(=[A-Za-z0-9._,:+-]{1,64})?$")
ExecutableName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
EXECUTABLES_HELP = (
    '"interp", "yjit", "zjit", or an object such as '
    '{"name": "yjit-64m", "jit": "yjit", "options": ["--yjit-mem-size=64"]}'
)


class ExecutableSpec(BaseModel):
    """One column of the comparison: an engine of the Ruby, with its own options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ExecutableName
    jit: Jit
    options: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=20
    )

    @model_validator(mode="after")
    def _options_fit_the_engine(self) -> ExecutableSpec:
        for option in self.options:
            if self.jit == "interp":
                raise ValueError(
                    f"executable {self.name!r}: jit interp takes no options (got {option!r}); "
                    'use jit "yjit" with --yjit-* or "zjit" with --zjit-* options'
                )
            if not OPTION.match(option) or not option.startswith(f"--{self.jit}-"):
                raise ValueError(
                    f"executable {self.name!r}: option {option!r} is not allowed for jit "
                    f"{self.jit}; only --{self.jit}-NAME or --{self.jit}-NAME=VALUE options "
                    f"(such as --{self.jit}-mem-size=64)"
                )
        return self

    @property
    def flags(self) -> list[str]:
        """Ruby's command-line flags for this column: the engine, then its options."""
        return ([f"--{self.jit}"] if self.jit != "interp" else []) + list(self.options)


def as_spec(entry: str | ExecutableSpec) -> ExecutableSpec:
    return entry if isinstance(entry, ExecutableSpec) else ExecutableSpec(name=entry, jit=entry)


def check_entries(value: Any) -> Any:
    """Before validation: one clear message per bad entry (not pydantic's union errors);
    objects become ExecutableSpec here; names unique."""
    if not isinstance(value, list):
        return value
    entries: list[Any] = []
    for i, entry in enumerate(value):
        if isinstance(entry, dict):
            try:
                entry = ExecutableSpec.model_validate(entry)
            except ValidationError as exc:
                raise ValueError(f"item {i}: {describe(exc.errors())}") from None
        elif entry not in JITS:
            raise ValueError(f"item {i} ({entry!r}) is not an engine; use {EXECUTABLES_HELP}")
        entries.append(entry)
    names = [as_spec(e).name for e in entries]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(
                f"the name {name!r} is used twice; give every executable its own name "
                '(objects take a "name")'
            )
    return entries


def column_label(ruby: str, name: str, several_rubies: bool) -> str:
    """ruby-bench's executable name: the column name, with the Ruby when a run has several."""
    return f"{name}@{ruby}" if several_rubies else name


def split_label(label: str) -> tuple[str | None, str]:
    """(ruby or None, column name) of a label made by column_label."""
    name, sep, ruby = label.partition("@")
    return (ruby, name) if sep else (None, label)

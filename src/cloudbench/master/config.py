"""Load a run config (JSON) into a RunSpec, with one clear line per problem."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cloudbench.protocol import KNOWN_KEYS, PROVIDERS, RunSpec, problems

# What each field expects, for messages a user can act on without reading the code.
_EXPECTED = {
    "ruby_version": 'a Ruby version such as "3.4.7", or "system" for the host\'s Ruby',
    "per_instance_type": 'an object such as {"tasks": 3, "instances": 1}',
    "per_instance_type.tasks": "an integer >= 1 (tasks per instance type)",
    "per_instance_type.instances": "an integer >= 1 (machines/runners per instance type)",
    "run_id": "a positive integer (unix seconds), or leave it out",
    "benchmarks": "an object with names, categories, iteration settings, executables",
}


class ConfigError(Exception):
    """A config problem; str() is one line per problem, each naming file and field."""


def load_config(path: Path, providers: Sequence[str] = ()) -> RunSpec:
    """Parse and validate CONFIG, keeping only the selected providers (all if none)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): expected a JSON object, got {_kind(data)}")
    _check_provider_keys(path, data)
    try:
        spec = RunSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_explain(path, exc))) from None
    return select_providers(path, spec, providers)


def select_providers(path: Path, spec: RunSpec, providers: Sequence[str]) -> RunSpec:
    """Drop every provider list not named in --provider (no filter keeps all)."""
    if not providers:
        return spec
    for name in providers:
        if name not in PROVIDERS:
            raise ConfigError(
                f"--provider {name}: unknown provider; expected one of {', '.join(PROVIDERS)}"
            )
    present = {p for p, _ in spec.instance_types()}
    chosen = [p for p in providers if p in present]
    if not chosen:
        raise ConfigError(
            f"{path}: --provider {', '.join(providers)}: the config has no instance types for "
            f"it; it lists {', '.join(sorted(present))}"
        )
    update: dict[str, Any] = {p: [] for p in PROVIDERS if p not in chosen}
    return spec.model_copy(update=update)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None


def _check_provider_keys(path: Path, data: dict[str, Any]) -> None:
    # RunSpec reports this too, but without naming the key as the field.
    for key, value in data.items():
        if key not in KNOWN_KEYS and key not in PROVIDERS and isinstance(value, list):
            raise ConfigError(
                f"{path}: {key}: unknown provider; expected one of {', '.join(PROVIDERS)}"
            )


def _explain(path: Path, exc: ValidationError) -> list[str]:
    lines = []
    for problem in problems(exc.errors()):
        field = problem.field(brackets=True) or "(top level)"
        missing = problem.kind == "missing"
        message = "missing" if missing else problem.message
        got = "" if missing or not problem.loc else f" (got {_short(problem.input)})"
        expected = _EXPECTED.get(field)
        if expected and problem.kind != "value_error":
            lines.append(f"{path}: {field}: {message}{got}; expected {expected}")
        else:
            lines.append(f"{path}: {field}: {message}{got}")
    return lines


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )

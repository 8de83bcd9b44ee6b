"""`cloudbench run`'s inputs → one validated `RunPlan`, before anything starts.

The config file becomes a RunSpec (one clear line per problem, naming file and field);
the command-line options and environment settings are checked against it; the Master
then only executes the plan.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloudbench.master.providers.base import ProviderError, RunnerOptions
from cloudbench.platform.stacks import AwsSettings, load_settings
from cloudbench.protocol import KNOWN_KEYS, PROVIDERS, RunSpec, problems
from cloudbench.protocol.executables import EXECUTABLES_HELP

if TYPE_CHECKING:
    from cloudbench.master.costplan import CostPlan

CLOUDS = ("aws", "azure")

# What each field expects, for messages a user can act on without reading the code.
_EXPECTED = {
    "ruby_version": 'a Ruby version such as "3.4.7", or "system" for the host\'s Ruby',
    "ruby_versions": 'a list of Ruby versions such as ["3.4", "4.0"]',
    "per_instance_type": 'an object such as {"tasks": 3, "instances": 1}',
    "per_instance_type.tasks": "an integer >= 1 (tasks per instance type)",
    "per_instance_type.instances": "an integer >= 1 (machines/runners per instance type)",
    "run_id": "a positive integer (unix seconds), or leave it out",
    "benchmarks": "an object with names, categories, iteration settings, executables",
    "benchmarks.executables": EXECUTABLES_HELP,
}


class ConfigError(Exception):
    """A config problem; str() is one line per problem, each naming file and field."""


class MasterSettings(BaseSettings):
    """Tokens for an orchestrator the master did not start (--orchestrator-url, status)."""

    model_config = SettingsConfigDict(env_prefix="CLOUDBENCH_", extra="ignore")

    admin_token: SecretStr | None = None
    runner_token: SecretStr | None = None


@dataclass
class MasterOptions:
    """How the master reports and waits, for `run` and `status` alike."""

    results_dir: Path = Path("results")
    yes: bool = False
    json_out: bool = False
    heartbeat_timeout: float = 120.0
    report_args: list[str] | None = None  # `cloudbench report` options; None: no report


@dataclass(frozen=True)
class External:
    """An orchestrator someone else runs (--orchestrator-url)."""

    url: str
    admin_token: str = field(repr=False)
    runner_token: str = field(repr=False)


@dataclass(frozen=True)
class RunOptions:
    """`cloudbench run`'s command-line options, as given."""

    providers: Sequence[str] = ()
    orchestrator_url: str | None = None
    reuse_orchestrator: bool = False
    state_dir: Path = Path(".")
    logs_dir: Path = Path("logs")
    runner: RunnerOptions = field(default_factory=RunnerOptions)
    master: MasterOptions = field(default_factory=MasterOptions)


@dataclass(frozen=True)
class RunPlan:
    """What `cloudbench run` does: the POST /runs body, which providers, which orchestrator.

    Exactly one orchestrator source: `external`, `aws` (the meta deployment; `reuse`
    skips terraform apply) or, when both are None, one embedded in this process.
    """

    spec: RunSpec
    body: dict[str, Any]
    providers: tuple[str, ...]
    runner: RunnerOptions
    master: MasterOptions
    state_dir: Path
    logs_dir: Path
    external: External | None = None
    aws: AwsSettings | None = None
    reuse: bool = False
    clouds: list[str] = field(default_factory=list)  # aws/azure of the config, in order
    cost: CostPlan | None = None  # the cost guard's estimate (cloud runs, budget, --dry-run)


def build_plan(config: Path, options: RunOptions) -> RunPlan:
    """Raises ConfigError (file problems) or ProviderError (options that cannot work)."""
    spec = load_config(config, options.providers)
    clouds = [p for p in spec.providers() if p in CLOUDS]
    # local, plus one "cloud" provider for all cloud stacks (they apply in parallel).
    providers = tuple(
        (["cloud"] if clouds else []) + [p for p in spec.providers() if p not in CLOUDS]
    )
    aws = _aws(options, providers)  # first: its conflict explains more than a missing token
    external = _external(options, providers)
    return RunPlan(
        spec=spec,
        body=spec.request_body(),
        providers=providers,
        runner=options.runner,
        master=options.master,
        state_dir=options.state_dir,
        logs_dir=options.logs_dir,
        external=external,
        aws=aws,
        reuse=options.reuse_orchestrator,
        clouds=clouds,
    )


def _aws(options: RunOptions, providers: tuple[str, ...]) -> AwsSettings | None:
    """The meta deployment's settings when the run needs one (AWS or --reuse-orchestrator)."""
    if "cloud" not in providers and not options.reuse_orchestrator:
        return None
    if options.orchestrator_url:
        raise ProviderError(
            "--orchestrator-url cannot be combined with aws/azure instance types or "
            "--reuse-orchestrator: cloud runners need the meta deployment's orchestrator"
        )
    return load_settings()


def _external(options: RunOptions, providers: tuple[str, ...]) -> External | None:
    if not options.orchestrator_url:
        return None
    settings = MasterSettings()
    admin = settings.admin_token.get_secret_value() if settings.admin_token else ""
    runner = settings.runner_token.get_secret_value() if settings.runner_token else ""
    if not admin:
        raise ProviderError("--orchestrator-url needs CLOUDBENCH_ADMIN_TOKEN in the environment")
    if not runner and "local" in providers:
        raise ProviderError("local runners need CLOUDBENCH_RUNNER_TOKEN with --orchestrator-url")
    return External(options.orchestrator_url, admin, runner)


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

"""Sweep away every Azure resource group tagged as cloudbench's, optionally only one run's.

Each run's Azure resources live in one resource group (``cloudbench-<run_id>``, tagged
``Project=cloudbench``, ``RunId=<run_id>``), so deleting the group deletes the run. Two
steps so the CLI can show what will go and ask first:

    client = make_client(settings)
    plan = plan_sweep(client, run_id=None)     # lists, changes nothing
    result = execute_sweep(client, plan)       # deletes, waits, lists again

Credentials come from azure-identity's DefaultAzureCredential (environment, managed
identity, Azure CLI login, ...); the endpoint from CLOUDBENCH_AZURE_ARM_ENDPOINT.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)

from cloudbench.platform.azure import (
    NO_CREDENTIALS,
    AzureSettings,
    AzureUnavailable,
    load_settings,
    make_client,
)

if TYPE_CHECKING:
    from azure.core.polling import LROPoller
    from azure.mgmt.resource.resources import ResourceManagementClient

__all__ = [
    "NO_CREDENTIALS",
    "AzureSettings",
    "AzureUnavailable",
    "load_settings",
    "make_client",
]

logger = logging.getLogger(__name__)

PROJECT_FILTER = "tagName eq 'Project' and tagValue eq 'cloudbench'"
BLIND = NO_CREDENTIALS + " (without them nothing can be shown to be gone)"


@dataclass(frozen=True)
class Group:
    name: str
    run_id: str
    state: str

    def describe(self) -> str:
        run = f" run {self.run_id}" if self.run_id else ""
        return f"resource-group {self.name}{run} ({self.state})"


@dataclass
class SweepPlan:
    run_id: str | None
    groups: list[Group] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        return [g.describe() for g in self.groups] + [f"(could not list: {e})" for e in self.errors]


@dataclass
class SweepResult:
    deleted: list[Group]
    failures: list[tuple[Group, str]]
    remaining: SweepPlan

    def describe(self) -> list[str]:
        """Failures first, then what is still there (what is being deleted included)."""
        failed = [f"failed: {g.name}: {message}" for g, message in self.failures]
        return failed + [f"remains: {line}" for line in self.remaining.describe()]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.remaining.groups and not self.remaining.errors


def plan_sweep(client: ResourceManagementClient, run_id: str | None = None) -> SweepPlan:
    """Every group tagged Project=cloudbench (and RunId=run_id if given). Deletes nothing.

    ARM filters on one tag only; the run id is matched here.
    """
    plan = SweepPlan(run_id=run_id)
    try:
        for group in client.resource_groups.list(filter=PROJECT_FILTER):
            tags = group.tags or {}
            if tags.get("Project") != "cloudbench":
                continue  # the filter is the server's promise; this is ours
            if run_id is not None and tags.get("RunId") != run_id:
                continue
            state = getattr(group.properties, "provisioning_state", None) or "unknown"
            plan.groups.append(Group(str(group.name), tags.get("RunId", ""), str(state)))
    except ClientAuthenticationError as exc:
        raise AzureUnavailable(BLIND) from exc
    except AzureError as exc:
        logger.warning("cannot list resource groups: %s", _short(exc))
        plan.errors.append(f"cannot list resource groups: {_short(exc)}")
    return plan


def execute_sweep(
    client: ResourceManagementClient, plan: SweepPlan, *, timeout: float = 1800.0
) -> SweepResult:
    """Start every group's deletion at once, wait for each, then list again."""
    started: list[tuple[Group, LROPoller[None]]] = []
    failures: list[tuple[Group, str]] = []
    deleted: list[Group] = []
    for group in plan.groups:
        try:
            started.append((group, client.resource_groups.begin_delete(group.name)))
        except ResourceNotFoundError:
            deleted.append(group)
        except ClientAuthenticationError as exc:
            raise AzureUnavailable(BLIND) from exc
        except AzureError as exc:
            failures.append((group, _short(exc)))
    for group, poller in started:
        _wait(group, poller, timeout, deleted, failures)
    remaining = plan_sweep(client, plan.run_id)
    return SweepResult(deleted=deleted, failures=failures, remaining=remaining)


def _wait(
    group: Group,
    poller: LROPoller[None],
    timeout: float,
    deleted: list[Group],
    failures: list[tuple[Group, str]],
) -> None:
    try:
        poller.result(timeout=timeout)
    except ResourceNotFoundError:
        pass  # gone before we looked
    except AzureError as exc:
        logger.warning("deleting %s failed: %s", group.name, _short(exc))
        failures.append((group, _short(exc)))
        return
    if not poller.done():
        failures.append((group, f"still deleting after {timeout:.0f}s"))
        return
    logger.info("deleted resource group %s", group.name)
    deleted.append(group)


def _short(exc: Exception) -> str:
    """The ARM error code and message, on one line."""
    if isinstance(exc, HttpResponseError) and exc.error is not None:
        code: Any = exc.error.code
        return f"{code}: {exc.error.message}".replace("\n", " ")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__

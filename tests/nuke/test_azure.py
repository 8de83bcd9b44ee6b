"""The Azure sweep against a local ARM-shaped HTTPS stand-in (tests/nuke/arm_standin.py).

No Azure Resource Manager emulator exists, so the stand-in plays ARM: the code under test
makes its real azure-mgmt-resource calls (list by tag with nextLink paging, begin_delete
and the long-running-operation polling, azure-core's retries of 429/503) over HTTPS. In
the function tests the credential is a static token (Azure's token service cannot exist
here); the CLI tests run `cloudbench nuke` as a subprocess whose DefaultAzureCredential
gets its token from the stand-in's App Service-style managed-identity endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from cloudbench.nuke.azure import (
    AzureSettings,
    AzureUnavailable,
    execute_sweep,
    make_client,
    plan_sweep,
)
from tests.nuke.arm_standin import Standin

SUB = "0b4c8a8e-5f7e-4d1e-9a61-3c2b1a0f9e8d"
OURS = {"Project": "cloudbench"}


class StaticToken:
    """A TokenCredential that hands out the stand-in's token (no token service here)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes_asked: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes_asked.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Standin]:
    with Standin(tmp_path, SUB) as standin:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(standin.ca))
        yield standin


def _client(arm: Standin) -> Any:
    settings = AzureSettings(subscription_id=SUB, arm_endpoint=arm.url)
    return make_client(settings, StaticToken(arm.world.token))


def _populate(arm: Standin) -> None:
    w = arm.world
    for run in ("7", "8", "9"):
        w.add(f"cloudbench-{run}", {**OURS, "RunId": run, "Stack": "providers/azure"})
    w.add("cloudbench-orphan", dict(OURS))  # ours, from no run (a manual or broken one)
    w.add("payroll", {"Owner": "finance"})
    w.add("cloudbench-lookalike", {"Project": "other"})  # the name means nothing


def test_plan_lists_only_our_groups_across_pages(arm: Standin) -> None:
    _populate(arm)
    plan = plan_sweep(_client(arm))
    assert sorted(g.name for g in plan.groups) == [
        "cloudbench-7",
        "cloudbench-8",
        "cloudbench-9",
        "cloudbench-orphan",
    ]
    assert plan.errors == []
    # 4 tag-matching groups at 2 per page: the SDK followed nextLink once.
    assert [e for e in arm.world.log if e.startswith("LIST")] == ["LIST 0", "LIST 2"]
    assert len(arm.world.groups) == 6, "planning deleted something"
    only = plan_sweep(_client(arm), run_id="8")
    assert [g.name for g in only.groups] == ["cloudbench-8"]
    assert only.describe() == ["resource-group cloudbench-8 run 8 (Succeeded)"]


def test_sweep_deletes_waits_and_survives_throttling(arm: Standin) -> None:
    _populate(arm)
    arm.world.throttle = [("GET", 429), ("DELETE", 503), ("GET", 503)]
    client = _client(arm)
    plan = plan_sweep(client)
    result = execute_sweep(client, plan, timeout=60)
    assert result.ok, result.describe()
    assert sorted(g.name for g in result.deleted) == [g.name for g in plan.groups]
    assert sorted(arm.world.groups) == ["cloudbench-lookalike", "payroll"]
    assert {"GET 429", "DELETE 503", "GET 503"} <= set(arm.world.log)
    assert arm.world.throttle == []


def test_a_failing_deletion_is_reported_not_swallowed(arm: Standin) -> None:
    w = arm.world
    w.add("cloudbench-1", {**OURS, "RunId": "1"})
    w.add("cloudbench-2", {**OURS, "RunId": "2"}, mode="locked")  # 409 at DELETE
    w.add("cloudbench-3", {**OURS, "RunId": "3"}, mode="blocked")  # the operation fails
    client = _client(arm)
    result = execute_sweep(client, plan_sweep(client), timeout=60)
    assert not result.ok
    assert [g.name for g in result.deleted] == ["cloudbench-1"]
    failures = dict((g.name, message) for g, message in result.failures)
    assert failures["cloudbench-2"].startswith("ScopeLocked:")
    assert "cloudbench-3" in failures
    assert sorted(g.name for g in result.remaining.groups) == ["cloudbench-2", "cloudbench-3"]
    lines = result.describe()
    assert any(line.startswith("failed: cloudbench-2: ScopeLocked") for line in lines)
    assert "remains: resource-group cloudbench-3 run 3 (Succeeded)" in lines


def test_a_rejected_token_means_azure_is_unavailable(arm: Standin) -> None:
    settings = AzureSettings(subscription_id=SUB, arm_endpoint=arm.url)
    client = make_client(settings, StaticToken("not-the-token"))
    with pytest.raises(AzureUnavailable, match="no usable Azure credentials"):
        plan_sweep(client)


def test_no_subscription_is_one_clear_error() -> None:
    with pytest.raises(AzureUnavailable, match="CLOUDBENCH_AZURE_SUBSCRIPTION_ID"):
        make_client(AzureSettings(subscription_id=""), StaticToken("x"))


# --- the CLI, as a user runs it -----------------------------------------------------------


def _cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDBENCH_", "AZURE_"))}
    base.pop("IDENTITY_ENDPOINT", None)
    base.pop("IDENTITY_HEADER", None)
    return subprocess.run(
        [sys.executable, "-m", "cloudbench", "nuke", *args],
        env={**base, "CLOUDBENCH_HOME": str(home), "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _identity_env(arm: Standin) -> dict[str, str]:
    return {
        "CLOUDBENCH_AZURE_SUBSCRIPTION_ID": SUB,
        "CLOUDBENCH_AZURE_ARM_ENDPOINT": arm.url,
        "REQUESTS_CA_BUNDLE": str(arm.ca),
        # App Service's managed identity: DefaultAzureCredential's real chain finds it.
        "IDENTITY_ENDPOINT": f"{arm.url}/msi/token",
        "IDENTITY_HEADER": arm.world.identity_header,
    }


def test_cli_sweeps_one_run_clean(arm: Standin, tmp_path: Path) -> None:
    _populate(arm)
    result = _cli(tmp_path, "--provider", "azure", "--run-id", "8", "--yes", **_identity_env(arm))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resource-group cloudbench-8 run 8" in result.stdout
    assert "azure: left: nothing" in result.stdout
    assert "cloudbench-8" not in arm.world.groups
    assert {"cloudbench-7", "cloudbench-9", "cloudbench-orphan"} <= set(arm.world.groups)


def test_cli_exits_non_zero_naming_what_is_left(arm: Standin, tmp_path: Path) -> None:
    arm.world.add("cloudbench-5", {**OURS, "RunId": "5"}, mode="locked")
    result = _cli(tmp_path, "--provider", "azure", "--yes", **_identity_env(arm))
    assert result.returncode == 1
    assert "failed: cloudbench-5: ScopeLocked" in result.stdout
    assert "remains: resource-group cloudbench-5" in result.stdout


def test_cli_without_credentials_says_so_in_one_line(tmp_path: Path) -> None:
    # No credential source at all (no env, no managed identity endpoint, no az login).
    env = {"CLOUDBENCH_AZURE_SUBSCRIPTION_ID": SUB, "AZURE_POD_IDENTITY_AUTHORITY_HOST": ""}
    started = time.monotonic()
    result = _cli(tmp_path, "--provider", "azure", "--yes", **env)
    assert result.returncode == 1, result.stdout
    errors = [ln for ln in result.stdout.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no usable Azure credentials" in errors[0], result.stdout
    assert "nothing to remove" not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert time.monotonic() - started < 90


def test_cli_without_provider_does_every_provider_the_state_knows(
    arm: Standin, tmp_path: Path
) -> None:
    """A recorded azure stack makes azure part of a bare `cloudbench nuke`.

    Terraform is a FAKE here (no providers can be downloaded): it records its calls.
    """
    stack = tmp_path / "terraform" / "default" / "runs" / "9" / "azure"
    stack.mkdir(parents=True)
    (stack / "variables.tf").write_text('variable "runner_token" {}\n')
    (stack / "vars.json").write_text('{"run_id": "9"}')
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "fake-terraform"
    fake.write_text(f'#!/bin/sh\necho "$PWD $1" >> {calls}\n')
    fake.chmod(0o755)
    arm.world.add("cloudbench-9", {**OURS, "RunId": "9"})
    env = {**_identity_env(arm), "CLOUDBENCH_AWS_TERRAFORM": str(fake)}
    result = _cli(tmp_path, "--yes", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "local:" in result.stdout and "azure:" in result.stdout
    assert "aws:" not in result.stdout  # no AWS stack recorded: not asked
    assert f"{stack} destroy" in calls.read_text()
    assert "cloudbench-9" not in arm.world.groups

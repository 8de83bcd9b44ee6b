"""The cost guard: `cloudbench run --dry-run` plans and touches nothing; budgets refuse early.

`terraform` is the FAKE of tests/master/test_aws_path.py (no providers can be downloaded):
here it must never be called at all. Prices come from the config and --offline-prices, so
no price API is asked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.master.conftest import Harness, fake_config, needs_ruby
from tests.master.test_aws_path import SETTINGS, FakeTerraform
from tests.master.test_aws_path import fake as fake
from tests.moto_aws import ec2_quotas


def _config(names: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    config = fake_config([], 4, names if names is not None else ["fib", "loops"], instances=2)
    config["aws"] = [
        {"instance_type": "c7g.large", "alias": "graviton3"},
        {"instance_type": "m7i.large"},
    ]
    config["azure"] = [{"instance_type": "Standard_D2pls_v6", "alias": "cobalt100"}]
    config["prices"] = {"aws/c7g.large": 0.0725, "Standard_D2pls_v6": 0.0864}
    return {**config, **extra}


def _dry(harness: Harness, fake: FakeTerraform, config: dict[str, Any], *args: str) -> Any:
    path = harness.config(config)
    env = fake.env(**SETTINGS, CLOUDBENCH_AZURE_LOCATION="westeurope")
    return harness.cli(
        "run",
        str(path),
        "--dry-run",
        "--offline-prices",
        "--state-dir",
        str(harness.state),
        *args,
        **env,
    )


def _row(out: str, instance_type: str) -> list[str]:
    return next(ln.split() for ln in out.splitlines() if f" {instance_type} " in ln)


def test_dry_run_prints_the_plan_and_touches_nothing(harness: Harness, fake: FakeTerraform) -> None:
    result = _dry(harness, fake, _config())
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # 2 VMs each; 4 tasks over 2 VMs at 1 slot = 2 tasks per VM of 2 benchmarks x 1 exe:
    # 2 x 120 s + 15 min setup = 0.3167 h per VM, 0.6333 instance-hours per type.
    graviton = _row(out, "c7g.large")
    assert graviton[:6] == ["aws", "c7g.large", "graviton3", "2", "1", "4"]
    assert graviton[6] == "0.63" and graviton[7] == "0.1450" and graviton[8] == "0.05"
    assert _row(out, "m7i.large")[-4:] == ["no", "price", "no", "price"]
    assert "no price" in out
    cobalt = _row(out, "Standard_D2pls_v6")
    assert cobalt[0] == "azure" and cobalt[7] == "0.1728"
    assert "stacks: aws, azure" in out
    assert "assumed 60 s per benchmark and executable (120 s per task)" in out
    # The meta deployment bills while the run runs: 0.0208 + 0.0104 (t3.small, t3.micro list
    # prices) + 2 x 0.005 (IPv4) + 38 GiB x 0.08 / 730 h = 0.0454 USD/h, for 0.3167 h.
    assert (
        "meta   orchestrator t3.small, bastion t3.micro, 2 public IPv4, 38 GiB gp3, bucket: "
        "0.0454 USD/h, 0.01 USD for the run, 33.12 USD per month while it stays up "
        "(instances: us-east-1 list prices, infrastructure/meta/README.md)"
    ) in out
    assert (
        "estimated cost: 0.3632 USD/h, 0.12 USD for the run + 1 type(s) with no price "
        "(meta stack included)"
    ) in out
    # Zones and quotas from EC2 (moto): both types are offered in eu-west-1a.
    assert "aws zone for c7g.large: eu-west-1a" in out
    assert "aws zone for m7i.large: eu-west-1a" in out
    # 2 x 2 + 2 x 2 vCPUs + the meta stack's 4; moto has no EC2 quotas: not checked.
    assert (
        "aws quota L-1216C47A (Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) "
        "instances vCPUs) in eu-west-1: not checked (Service Quotas answered "
        "NoSuchResourceException); this run needs 12"
    ) in out
    assert not fake.calls()
    assert not harness.state.exists() and not (harness.home / "terraform").exists()


def test_dry_run_says_the_zone_of_each_type_and_refuses_what_cannot_launch(
    harness: Harness, fake: FakeTerraform, monkeypatch: pytest.MonkeyPatch
) -> None:
    ec2_quotas(monkeypatch, {"L-1216C47A": 8})  # the account's applied value (moto lacks it)
    config = _config()
    config["aws"] = [{"instance_type": "a1.large", "alias": "a1", "instances": 1}]
    result = _dry(harness, fake, config)
    assert result.returncode == 0, result.stdout + result.stderr
    # eu-west-1a does not offer a1.large: it goes to the next zone that does.
    assert "aws zone for a1.large: eu-west-1b" in result.stdout
    assert "in eu-west-1: 0 in use + 6 for this run = 6 of 8: ok" in result.stdout

    config["aws"] = [{"instance_type": "c7g.large", "instances": 3}, {"instance_type": "zz9.large"}]
    result = _dry(harness, fake, config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "refused: aws instance type zz9.large is not offered in any availability zone of "
        "eu-west-1; pick another type or region (CLOUDBENCH_AWS_REGION)"
    ) in result.stdout

    config["aws"] = [{"instance_type": "c7g.large", "instances": 3}]
    result = _dry(harness, fake, config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "refused: aws quota L-1216C47A (Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) "
        "instances vCPUs) in eu-west-1 is 8; 0 in use + 10 for this run = 10"
    ) in result.stdout
    assert "--quota-code L-1216C47A --desired-value 10 --region eu-west-1" in result.stdout
    assert not fake.calls()


def test_dry_run_uses_recorded_durations_of_the_same_selection(
    harness: Harness, fake: FakeTerraform
) -> None:
    config = _config()
    selection = json.dumps(
        {
            "names": ["fib", "loops"],
            "categories": [],
            "warmup_iterations": 0,
            "bench_iterations": 1,
            "min_bench_time": None,
            "executables": ["interp"],
            "extra_args": [],
            "env": {},
        },
        sort_keys=True,
    )
    harness.state.mkdir(parents=True)
    rows = [
        {"selection": selection, "provider": "aws", "instance_type": "c7g.large", "seconds": s}
        for s in (1800, 1700, 1900)
    ]
    rows.append(
        {"selection": "other", "provider": "aws", "instance_type": "c7g.large", "seconds": 99999}
    )
    (harness.state / "task-durations.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n{torn"
    )
    result = _dry(harness, fake, config)
    assert result.returncode == 0, result.stderr
    assert "recorded durations of 3 earlier task(s) with this selection" in result.stdout
    # median 1800 s x 2 tasks per VM + 0.25 h = 1.25 h per VM, 2 VMs.
    assert _row(result.stdout, "c7g.large")[6] == "2.50"
    # Unmeasured types take the slowest measured one.
    assert _row(result.stdout, "Standard_D2pls_v6")[6] == "2.50"


def test_dry_run_uses_measured_set_up_of_earlier_runs(
    harness: Harness, fake: FakeTerraform
) -> None:
    """Issue 27: boot-times.jsonl in CLOUDBENCH_HOME (what earlier runs' VMs measured from
    instance start to first benchmark) replaces the assumed 15 min for that type only."""
    harness.home.mkdir(parents=True)
    rows = [
        {
            "run_id": 1,
            "instance_id": "i-a",
            "provider": "aws",
            "instance_type": "c7g.large",
            "setup_s": 9999,
        },  # recorded again on resume: the later row counts
        {
            "run_id": 1,
            "instance_id": "i-a",
            "provider": "aws",
            "instance_type": "c7g.large",
            "setup_s": 170,
        },
        {
            "run_id": 1,
            "instance_id": "i-b",
            "provider": "aws",
            "instance_type": "c7g.large",
            "setup_s": 180,
        },
        {
            "run_id": 2,
            "instance_id": "i-c",
            "provider": "aws",
            "instance_type": "c7g.large",
            "setup_s": 190,
        },
        {
            "run_id": 2,
            "instance_id": "i-d",
            "provider": "azure",
            "instance_type": "c7g.large",
            "setup_s": 5,
        },  # another cloud's type of that name: not this one
    ]
    (harness.home / "boot-times.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n{torn\n"
    )
    result = _dry(harness, fake, _config())
    assert result.returncode == 0, result.stderr
    # 2 x 120 s + median 180 s set-up = 0.1167 h per VM, 2 VMs.
    assert _row(result.stdout, "c7g.large")[6] == "0.23"
    assert _row(result.stdout, "m7i.large")[6] == "0.63"  # unmeasured: 15 min assumed
    assert "set-up per VM measured by earlier runs" in result.stdout
    assert f"({harness.home / 'boot-times.jsonl'}): graviton3 3.0 min (3 VMs)" in result.stdout
    assert "others 15 min assumed" in result.stdout
    assert "spot:" not in result.stdout  # all on-demand
    spot = _dry(harness, fake, _config(capacity="spot"))
    assert spot.returncode == 0, spot.stderr
    lines = spot.stdout.splitlines()
    cap = "spot: priced at most at this (on-demand) price"
    assert sum(cap in ln for ln in lines) == 3, spot.stdout  # every cloud type


def test_whole_suite_assumes_the_hard_lifetime_from_max_hours(
    harness: Harness, fake: FakeTerraform
) -> None:
    config = _config(names=[], budget={"max_hours": 3})
    result = _dry(harness, fake, config)
    assert result.returncode == 0, result.stderr
    assert "every VM lives its hard lifetime" in result.stdout
    assert "VM hard lifetime 180 min" in result.stdout
    assert _row(result.stdout, "c7g.large")[6] == "6.00"  # 2 VMs x 3 h


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"max_usd": 0.05}, "budget.max_usd: the run is estimated at"),
        ({"max_hours": 0.2}, "budget.max_hours: the run is estimated at 0.32 h"),
    ],
)
def test_budget_refuses_before_any_terraform(
    harness: Harness, fake: FakeTerraform, budget: dict[str, float], message: str
) -> None:
    config = _config(budget=budget)
    del config["aws"][1]  # every type priced
    path = harness.config(config)
    env = fake.env(**SETTINGS, CLOUDBENCH_AZURE_LOCATION="westeurope")
    result = harness.cli("run", str(path), "--offline-prices", **env)
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not fake.calls()


def test_a_budget_with_an_unpriced_type_is_refused(harness: Harness, fake: FakeTerraform) -> None:
    path = harness.config(_config(budget={"max_usd": 1000}))
    result = harness.cli("run", str(path), "--offline-prices", **fake.env(**SETTINGS))
    assert result.returncode == 1
    assert "no price for aws/m7i.large" in result.stderr
    assert '"prices"' in result.stderr
    assert not fake.calls()


def test_a_bad_budget_names_the_field(harness: Harness, fake: FakeTerraform) -> None:
    result = _dry(harness, fake, _config(budget={"max_usd": -1}))
    assert result.returncode == 1
    assert "budget.max_usd" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@needs_ruby
def test_a_finished_run_records_durations_the_next_plan_uses(harness: Harness) -> None:
    """A real local run (fake ruby-bench suite), then a dry run of the same selection."""
    config = fake_config(["a"], 2, ["fib"])
    path = harness.config(config)
    harness.start(path)
    code, _out, err = harness.wait()
    assert code == 0, err
    rows = [
        json.loads(ln) for ln in (harness.state / "task-durations.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 2 and all(
        r["instance_type"] == "local-a" and r["seconds"] > 0 for r in rows
    )
    result = harness.cli("run", str(path), "--dry-run", "--state-dir", str(harness.state))
    assert result.returncode == 0, result.stderr
    assert "recorded durations of 2 earlier task(s) with this selection" in result.stdout
    other = harness.config(fake_config(["a"], 2, ["loops"]), "other.json")
    result = harness.cli("run", str(other), "--dry-run", "--state-dir", str(harness.state))
    assert "assumed 60 s per benchmark" in result.stdout  # another selection: no history


def test_dry_run_lists_tasks_and_cost_per_type_and_ruby(
    harness: Harness, fake: FakeTerraform
) -> None:
    config = _config(ruby_versions=["3.4", "4.0"])
    del config["ruby_version"]
    config["aws"][0]["tasks"] = 6  # per-type count: 3 tasks per VM on its 2 VMs
    result = _dry(harness, fake, config)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if " c7g.large " in ln)
    # 3 tasks per VM x (2 names x 1 exe x 2 Rubies x 60 s) = 0.2 h of benchmarks per VM,
    # x 2 VMs, half of it each Ruby's: 0.2 inst-h x 0.0725 USD/h = 0.0145 USD.
    assert lines[at].split()[5] == "6"
    assert lines[at + 1 : at + 4] == [
        "         Ruby 3.4: 6 task(s), 0.20 inst-h, 0.01 USD",
        "         Ruby 4.0: 6 task(s), 0.20 inst-h, 0.01 USD",
        "         (each task runs every Ruby; the setup time is shared)",
    ]
    m7i = next(i for i, ln in enumerate(lines) if " m7i.large " in ln)
    assert lines[m7i + 1] == "         Ruby 3.4: 4 task(s), 0.13 inst-h, no price"
    assert not fake.calls()

"""Zones and vCPU quotas before an AWS apply, against moto's server (real boto3 over HTTP).

moto's offerings are per zone and region as AWS publishes them (eu-west-1a lacks a1.*);
its Service Quotas lacks EC2, so the quota values here are set in moto (tests/moto_aws.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.servicequotas.models import ServiceQuotasBackend

from cloudbench.master.capacity import plan_capacity, quota_of
from tests.moto_aws import MOTO_GET_SERVICE_QUOTA, ec2_quotas, moto_server, use_aws

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    use_aws(monkeypatch, moto_url, "us-east-1")  # the region must come from the argument
    return moto_url


def test_each_type_goes_to_the_first_zone_that_offers_it(aws: str) -> None:
    plan = plan_capacity([("c7g.large", 2), ("a1.large", 1)], REGION, meta_pending=False)
    assert plan.problems == []
    assert plan.zones == {"c7g.large": "eu-west-1a", "a1.large": "eu-west-1b"}
    assert "aws zone for a1.large: eu-west-1b" in plan.describe()


def test_a_type_offered_nowhere_in_the_region_is_refused(aws: str) -> None:
    plan = plan_capacity([("c7g.large", 1), ("zz9.large", 1)], REGION, meta_pending=False)
    assert plan.problems == [
        f"instance type zz9.large is not offered in any availability zone of {REGION}; "
        "pick another type or region (CLOUDBENCH_AWS_REGION)"
    ]
    assert "refused: aws instance type zz9.large" in plan.describe()[-1]


def test_quota_counts_the_run_the_meta_stack_and_what_runs(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ec2_quotas(monkeypatch, {"L-1216C47A": 16})
    # 3 x c7g.large (2 vCPUs) + the meta stack's t3.small and t3.micro (2 each) = 10.
    plan = plan_capacity([("c7g.large", 3)], REGION, meta_pending=True)
    assert plan.problems == [] and plan.zones == {"c7g.large": "eu-west-1a"}
    [check] = plan.quotas
    assert (check.code, check.limit, check.in_use, check.needed) == ("L-1216C47A", 16, 0, 10)
    assert check.line(REGION).endswith("0 in use + 10 for this run = 10 of 16: ok")
    ec2: Any = boto3.client("ec2", region_name=REGION)
    ec2.run_instances(ImageId="ami-12c6146b", InstanceType="m5.2xlarge", MinCount=1, MaxCount=1)
    plan = plan_capacity([("c7g.large", 3)], REGION, meta_pending=True)
    assert plan.problems == [
        "quota L-1216C47A (Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances "
        f"vCPUs) in {REGION} is 16; 8 in use + 10 for this run = 18 (c7g.large 6 vCPUs, "
        "t3.small 2 vCPUs, t3.micro 2 vCPUs); lower the instance counts or request more: "
        "aws service-quotas request-service-quota-increase --service-code ec2 "
        f"--quota-code L-1216C47A --desired-value 18 --region {REGION}"
    ]
    # Meta deployed already: its instances are among those running, not counted twice.
    assert plan_capacity([("c7g.large", 3)], REGION, meta_pending=False).quotas[0].needed == 6


def test_quota_families() -> None:
    assert quota_of("c7g.large")[0] == "L-1216C47A"
    assert quota_of("im4gn.large")[0] == "L-1216C47A"
    assert quota_of("dl1.24xlarge")[0] == "L-6E869C2A"
    assert quota_of("d3.xlarge")[0] == "L-1216C47A"
    assert quota_of("g5.xlarge")[0] == "L-DB2E81BA"
    assert quota_of("p4d.24xlarge")[0] == "L-417A185B"
    assert quota_of("mac1.metal")[0] == ""


def test_a_quota_moto_cannot_answer_is_not_checked_not_passed(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto's own Service Quotas (no EC2 values), even after an in-process twin patched it.
    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", MOTO_GET_SERVICE_QUOTA)
    plan = plan_capacity([("c7g.large", 1)], REGION, meta_pending=False)
    [check] = plan.quotas
    assert check.limit is None and plan.problems == []
    assert "not checked (Service Quotas answered" in check.line(REGION)


def test_a_run_type_that_the_meta_stack_also_uses_keeps_its_zone(aws: str) -> None:
    plan = plan_capacity([("t3.micro", 2)], REGION, meta_pending=True)
    assert plan.zones == {"t3.micro": "eu-west-1a"}
    assert plan.quotas[0].needed == 2 * 2 + 2 + 2  # the runners, the orchestrator, the bastion


def test_spot_instances_count_against_the_spot_quota(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spot entry needs the spot vCPU quota (L-34B43A08), not the on-demand one: a run
    that fits the spot quota is not refused for an on-demand quota it does not use."""
    ec2_quotas(monkeypatch, {"L-1216C47A": 4, "L-34B43A08": 8})
    plan = plan_capacity([("c7g.large", 1), ("c7g.large", 3, True)], REGION, meta_pending=False)
    assert plan.problems == [], plan.problems
    checks = {c.code: c for c in plan.quotas}
    assert (checks["L-1216C47A"].needed, checks["L-34B43A08"].needed) == (2, 6)
    plan = plan_capacity([("c7g.large", 5, True)], REGION, meta_pending=False)
    assert len(plan.problems) == 1 and plan.problems[0].startswith(
        f"quota L-34B43A08 (All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests "
        f"vCPUs) in {REGION} is 8; 0 in use + 10 for this run = 10"
    ), plan.problems

"""The cost meter's arithmetic and its one-shot budget stop (launch times set in the past)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloudbench.master.ledger import CostMeter
from cloudbench.protocol import Budget, CostLedger, RunSpec


def _spec() -> RunSpec:
    return RunSpec.model_validate(
        {
            "ruby_version": "3.4.1",
            "per_instance_type": {"tasks": 4, "instances": 2},
            "aws": [{"instance_type": "c7g.large"}, {"instance_type": "m7i.large"}],
            "azure": [{"instance_type": "Standard_D2pls_v6", "alias": "cobalt100"}],
            "local": [{"instance_type": "here"}],
        }
    )


def _meter(budget: Budget | None, hours_ago: float) -> CostMeter:
    prices = {
        ("aws", "c7g.large"): 0.5,
        ("aws", "m7i.large"): None,
        ("azure", "Standard_D2pls_v6"): 0.25,
    }
    meter = CostMeter(_spec(), prices, budget)
    past = datetime.now(UTC) - timedelta(hours=hours_ago)
    meter.started = past
    meter.launched = {"aws": past, "azure": past + timedelta(hours=1)}
    return meter


def test_entries_count_vms_times_hours_times_price() -> None:
    meter = _meter(None, 2.0)
    meter.terminated = {"aws": meter.launched["aws"] + timedelta(hours=2)}
    entries = {e.instance_type: e for e in meter.entries()}
    assert set(entries) == {"c7g.large", "m7i.large", "Standard_D2pls_v6"}  # no local
    assert round(entries["c7g.large"].instance_hours, 3) == 4.0  # 2 VMs x 2 h
    assert round(entries["c7g.large"].usd or 0, 3) == 2.0
    assert entries["m7i.large"].usd is None
    assert round(entries["Standard_D2pls_v6"].instance_hours, 2) == 2.0  # still running: 1 h
    assert entries["Standard_D2pls_v6"].alias == "cobalt100"


def test_budget_stops_once_when_spent_or_late() -> None:
    assert _meter(Budget(max_usd=10), 2.0).over_budget() is None
    meter = _meter(Budget(max_usd=2.2), 2.0)  # 2.0 (aws) + 0.5 (azure) spent
    reason = meter.over_budget()
    assert reason and reason.startswith("budget.max_usd: elapsed cost 2.50 USD passed 2.2")
    assert meter.over_budget() is None  # the run is being stopped already
    late = _meter(Budget(max_hours=1.5), 2.0).over_budget()
    assert late and late.startswith("budget.max_hours: wall time 2.00 h passed 1.5")


def test_ledger_file_follows_the_protocol(tmp_path: Path) -> None:
    meter = _meter(None, 1.0)
    path = meter.write(tmp_path, 42)
    assert path == tmp_path / "42" / "cost-ledger.json"
    ledger = CostLedger.model_validate(json.loads(path.read_text()))
    assert ledger.run_id == 42 and ledger.unpriced == ["aws/m7i.large"]
    assert round(ledger.total_usd, 2) == 1.0  # 2 VMs x 1 h x 0.5; azure not up for long
    assert CostMeter(_spec(), {}).write(tmp_path, 43) is None  # nothing launched


def test_ledger_counts_the_meta_stack_from_the_run_start(tmp_path: Path) -> None:
    """The meta deployment bills for as long as the run runs (and after, until nuked)."""
    meter = _meter(None, 1.0)
    meter.meta_usd_per_hour = 0.05
    path = meter.write(tmp_path, 43)
    assert path is not None
    ledger = CostLedger.model_validate(json.loads(path.read_text()))
    assert ledger.meta is not None
    assert round(ledger.meta.hours, 2) == 1.0 and round(ledger.meta.usd, 3) == 0.05
    assert round(ledger.total_usd, 2) == 1.05  # the instances' 1.0 plus the meta share
    # An older ledger, written before the meta share existed, still reads.
    old = json.loads(path.read_text())
    del old["meta"]
    assert CostLedger.model_validate(old).meta is None
    # The budget watch counts it too: 2 VMs x 2 h x 0.5 + 0.5 (azure) + 2 h x 0.05.
    meter = _meter(Budget(max_usd=2.55), 2.0)
    meter.meta_usd_per_hour = 0.05
    reason = meter.over_budget()
    assert reason and reason.startswith("budget.max_usd: elapsed cost 2.60 USD passed 2.55")

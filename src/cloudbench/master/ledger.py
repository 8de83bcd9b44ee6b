"""What a run's cloud VMs cost: watched while it runs, written down when it ends.

Times are the master's own: a stack's VMs count from the end of its `terraform apply`
(they exist from then on, booting) to the end of its `terraform destroy` (they are gone).
That over-counts a little, never under-counts. Cost is VMs x hours x USD per hour; a type
without a price is listed as unpriced, never counted as free.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cloudbench.platform.prices import Price
from cloudbench.platform.state import write_private
from cloudbench.protocol import Budget, CostEntry, CostLedger, MetaShare, RunSpec

logger = logging.getLogger(__name__)

LEDGER = "cost-ledger.json"
CLOUDS = ("aws", "azure")


@dataclass
class CostMeter:
    spec: RunSpec
    prices: dict[tuple[str, str], float | None]
    budget: Budget | None = None
    launched: dict[str, datetime] = field(default_factory=dict)
    terminated: dict[str, datetime] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    tripped: bool = False
    # The AWS meta deployment, billed from the run's start on (None: no meta stack).
    meta_usd_per_hour: float | None = None
    # Spot types: the price in the zone their VMs run in (set after launch); until then,
    # and when the history has none, the on-demand price, spot's default cap.
    spot: dict[tuple[str, str], Price] = field(default_factory=dict)
    sources: dict[tuple[str, str], tuple[str | None, str | None]] = field(default_factory=dict)
    # Replacement VMs (master/replace.py): (when, VMs, bought as) per type, and the lines.
    extra: dict[tuple[str, str], list[tuple[datetime, int, str]]] = field(default_factory=dict)
    notes: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def replaced(self, provider: str, instance_type: str, vms: int, kind: str, line: str) -> None:
        key = (provider, instance_type)
        self.extra.setdefault(key, []).append((datetime.now(UTC), vms, kind))
        self.notes.setdefault(key, []).append(line)

    def launch(self, provider: str) -> None:
        self.launched.setdefault(provider, datetime.now(UTC))

    def terminate(self, provider: str) -> None:
        if provider in self.launched:
            self.terminated[provider] = datetime.now(UTC)

    def entries(self, now: datetime | None = None) -> list[CostEntry]:
        now = now or datetime.now(UTC)
        out = []
        for provider, item in self.spec.instance_types():
            if provider not in CLOUDS or provider not in self.launched:
                continue
            vms = self.spec.counts(item).instances
            start, end = self.launched[provider], self.terminated.get(provider, now)
            hours = vms * max(0.0, (end - start).total_seconds()) / 3600
            key = (provider, item.instance_type)
            price, (source, when) = self.prices.get(key), self.sources.get(key, (None, None))
            capacity = self.spec.capacity_of(provider, item)
            if capacity == "spot" and key in self.spot:
                found = self.spot[key]
                price, source, when = found.usd_per_hour, found.source, found.date
            elif capacity == "spot" and price is not None:
                source = f"on-demand price (spot cap; no spot price found): {source}"
            usd = None if price is None else hours * price
            for since, more, kind in self.extra.get(key, []):  # replacements, their own price
                extra = more * max(0.0, (end - since).total_seconds()) / 3600
                rate = self.prices.get(key) if kind == "on-demand" else price
                vms, hours = vms + more, hours + extra
                usd = None if usd is None or rate is None else usd + extra * rate
            out.append(
                CostEntry(
                    provider=provider,
                    instance_type=item.instance_type,
                    alias=item.effective_alias,
                    vms=vms,
                    launched_at=start,
                    terminated_at=end,
                    instance_hours=hours,
                    usd_per_hour=price,
                    usd=usd,
                    capacity=capacity,
                    price_source=source,
                    price_date=when,
                    notes=self.notes.get(key, []),
                )
            )
        return out

    def over_budget(self) -> str | None:
        """Why the run must stop now (once), or None."""
        if self.budget is None or self.tripped or not self.launched:
            return None
        wall = (datetime.now(UTC) - self.started).total_seconds() / 3600
        spent = sum(e.usd or 0.0 for e in self.entries()) + self._meta_usd()
        reason = None
        if self.budget.max_usd is not None and spent > self.budget.max_usd:
            reason = f"budget.max_usd: elapsed cost {spent:.2f} USD passed {self.budget.max_usd:g}"
        elif self.budget.max_hours is not None and wall > self.budget.max_hours:
            reason = f"budget.max_hours: wall time {wall:.2f} h passed {self.budget.max_hours:g}"
        if reason:
            self.tripped = True
            return reason + "; stopping the run and collecting what exists"
        return None

    def meta_share(self, now: datetime | None = None) -> MetaShare | None:
        if self.meta_usd_per_hour is None:
            return None
        hours = max(0.0, ((now or datetime.now(UTC)) - self.started).total_seconds()) / 3600
        return MetaShare(
            hours=hours, usd_per_hour=self.meta_usd_per_hour, usd=hours * self.meta_usd_per_hour
        )

    def _meta_usd(self) -> float:
        share = self.meta_share()
        return share.usd if share is not None else 0.0

    def write(self, results_dir: Path, run_id: int) -> Path | None:
        entries, meta = self.entries(), self.meta_share()
        if not entries:
            return None
        unpriced = [f"{e.provider}/{e.instance_type}" for e in entries if e.usd is None]
        total = sum(e.usd or 0.0 for e in entries) + (meta.usd if meta else 0.0)
        ledger = CostLedger(
            run_id=run_id, entries=entries, total_usd=total, unpriced=unpriced, meta=meta
        )
        path = results_dir / str(run_id) / LEDGER
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(ledger.model_dump(mode="json"), indent=2))
        logger.info("cost ledger: %.2f USD, %s", ledger.total_usd, path)
        return path

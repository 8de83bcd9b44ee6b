"""What the AWS meta deployment costs while it is up, and the line that says it stays up.

The meta stack (infrastructure/meta: orchestrator, bastion, elastic IP, the bastion's
public IPv4, their volumes, the results bucket) outlives every run until
`cloudbench nuke --provider aws` removes it. The dry-run and the cost ledger count its
hours during the run; the end of every run that used it says it is still up, what it
costs per month and the command that removes it.

Its two instances are priced from --prices or the config's prices when they list them,
else at the us-east-1 list prices stated in infrastructure/meta/README.md (the source
says which); the Price List API is not asked for them. Public IPv4 addresses
and gp3 volumes have one list price.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudbench.platform.prices import PriceResolver

HOURS_PER_MONTH = 730.0
# infrastructure/meta defaults: the two instances and their root volumes (GiB).
INSTANCES = {"orchestrator": "t3.small", "bastion": "t3.micro"}
VOLUME_GIB = 30 + 8
LIST_PRICES = {"t3.small": 0.0208, "t3.micro": 0.0104}  # us-east-1, meta README
IPV4_USD_PER_HOUR = 0.005  # each public IPv4 address: the elastic IP and the bastion's
GP3_USD_PER_GIB_MONTH = 0.08
README = "infrastructure/meta/README.md"


@dataclass(frozen=True)
class MetaCost:
    region: str
    usd_per_hour: float
    source: str  # where the instance prices come from

    @property
    def usd_per_month(self) -> float:
        return self.usd_per_hour * HOURS_PER_MONTH

    def row(self, hours: float) -> str:
        return (
            f"meta   orchestrator t3.small, bastion t3.micro, 2 public IPv4, {VOLUME_GIB} GiB "
            f"gp3, bucket: {self.usd_per_hour:.4f} USD/h, {hours * self.usd_per_hour:.2f} USD "
            f"for the run, {self.usd_per_month:.2f} USD per month while it stays up "
            f"(instances: {self.source})"
        )

    def still_up(self, deployment: str, bucket: str) -> str:
        named = f"bucket {bucket}" if bucket else "results bucket"
        return (
            f"still up: AWS meta deployment {deployment!r} in {self.region} (orchestrator "
            f"t3.small, bastion t3.micro, elastic IP + 1 public IPv4, {VOLUME_GIB} GiB gp3, "
            f"{named}): about {self.usd_per_hour:.4f} USD/h, "
            f"{self.usd_per_month:.2f} USD per month plus S3 storage; later runs reuse it; "
            f"remove it: cloudbench nuke --provider aws --region {self.region}"
        )


def meta_cost(resolver: PriceResolver | None, region: str) -> MetaCost:
    usd, sources = 0.0, set()
    for instance_type in INSTANCES.values():
        price = resolver.resolve("aws", instance_type, region) if resolver else None
        if price is None:
            usd += LIST_PRICES[instance_type]
            sources.add(f"us-east-1 list prices, {README}")
        else:
            usd += price.usd_per_hour
            sources.add(price.source)
    usd += 2 * IPV4_USD_PER_HOUR + VOLUME_GIB * GP3_USD_PER_GIB_MONTH / HOURS_PER_MONTH
    return MetaCost(region, usd, "; ".join(sorted(sources)))

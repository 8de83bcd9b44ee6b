"""Every pair of types compared from one resampling; ranks and probabilities from it.

Per executable, each type's log geomean time over the benchmarks every type completed
(the headline ones when recorded) gets *replicates*: its bootstrap replicates (the
hierarchical bootstrap of stats.py over tasks, machines first when there are several)
when every type has >= BOOTSTRAP_MIN_UNITS units, else draws from the t distribution its
t interval uses (log scale, delta-method variance, units - 1 df), seeded per type.

- A pair's ratio is b's time ÷ a's time (above 1: a is faster) with its 95 % interval:
  the percentiles of the replicates' differences (bootstrap) or the Welch t interval on
  the log scale; a pair is *tied* when that interval contains 1. The speedup against the
  baseline is exactly the (type, baseline) pair; the baseline itself is the reference.
- Per dollar, for priced types: a's cost per unit of work (time x $/h) against b's, the
  same pair interval times b's price ÷ a's (prices are constants, so this is exactly the
  interval of the same replicates' time x $/h); ordered and tied the same way.
- From the same replicates: each type's probability of being fastest, of being best per
  dollar (time x $/h, priced types only) and the central 95 % of its rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from cloudbench.report.groups import Cell
from cloudbench.report.stats import (
    LEVEL,
    N_BOOT,
    Array,
    Group,
    Interval,
    log_boot_means,
    log_geomean_score,
    method_for,
    percentile_interval,
    seed_for,
    welch_log_interval,
)

REFERENCE = Interval(1.0, None, None, "reference")


@dataclass
class Contender:
    alias: str
    group: Group
    log_time: float  # log of the geomean time over the compared benchmarks
    variance: float  # delta-method variance of log_time (t method)
    df: int
    columns: NDArray[np.int64]
    _boot: Array | None = field(default=None, repr=False)

    def boot(self) -> Array:
        """Bootstrap replicates of log_time (cached)."""
        if self._boot is None:
            with np.errstate(invalid="ignore", divide="ignore"):
                self._boot = np.mean(log_boot_means(self.group)[:, self.columns], axis=1)
        return self._boot

    def t_draws(self, seed: int) -> Array | None:
        if not math.isfinite(self.variance) or self.df < 1:
            return None
        rng = np.random.default_rng(seed)
        return self.log_time + math.sqrt(self.variance) * rng.standard_t(self.df, N_BOOT)


@dataclass
class Comparison:
    """One executable's comparisons (summary.json `pairwise[exe]` and per-type fields)."""

    names: list[str]
    method: str | None  # of the replicates behind probabilities and rank intervals
    vs_baseline: dict[str, Interval]
    rank: dict[str, int]
    tied: dict[str, list[str]]
    pairs: list[dict[str, object]]
    per_dollar_pairs: list[dict[str, object]]  # priced types only, cheaper per work first
    clearly_faster: set[tuple[str, str]]  # (a, b): a's interval over b clear of 1
    rank_interval: dict[str, list[int] | None]
    prob_fastest: dict[str, float | None]
    prob_best_per_dollar: dict[str, float | None]


def contender(alias: str, cell: Cell, columns: NDArray[np.int64]) -> Contender:
    log_time, variance, df = log_geomean_score(cell.group, columns)
    return Contender(alias, cell.group, log_time, variance, df, columns)


def pair_interval(a: Contender, b: Contender) -> Interval:
    """b's time ÷ a's time: how many times faster a is than b, with its interval."""
    estimate = math.exp(b.log_time - a.log_time)
    method = method_for(a.group, b.group)
    if method == "bootstrap":
        return percentile_interval(np.exp(b.boot() - a.boot()), estimate)
    if method == "none":
        return Interval(estimate, None, None, "none")
    return welch_log_interval(b.log_time - a.log_time, [(a.variance, a.df), (b.variance, b.df)])


def _contains_one(interval: Interval) -> bool | None:
    if interval.ci_low is None or interval.ci_high is None:
        return None
    return interval.ci_low <= 1.0 <= interval.ci_high


def replicates(found: list[Contender], seed: int, exe: str) -> tuple[str | None, Array | None]:
    """(method, types x replicates of log time), finite replicates only."""
    method = method_for(*(c.group for c in found))
    if method == "none":
        return None, None
    if method == "bootstrap":
        rows: list[Array | None] = [c.boot() for c in found]
    else:
        rows = [c.t_draws(seed_for(seed, c.alias, exe, "draws")) for c in found]
    if any(r is None for r in rows):
        return None, None
    table = np.vstack([r for r in rows if r is not None])
    return method, table[:, np.all(np.isfinite(table), axis=0)]


def _probabilities(table: Array) -> tuple[list[float], list[list[int]]]:
    """(probability of the lowest time, central LEVEL rank interval) per row."""
    n, replicates_ = table.shape
    best = np.bincount(np.argmin(table, axis=0), minlength=n) / replicates_
    ranks = table.argsort(axis=0).argsort(axis=0) + 1
    alpha = (1 - LEVEL) / 2
    low, high = np.quantile(ranks, [alpha, 1 - alpha], axis=1, method="inverted_cdf")
    return best.tolist(), [[int(lo), int(hi)] for lo, hi in zip(low, high, strict=True)]


def _pairs(found: list[Contender]) -> tuple[list[dict[str, object]], set[tuple[str, str]]]:
    order = sorted(found, key=lambda c: c.log_time)
    pairs: list[dict[str, object]] = []
    clear: set[tuple[str, str]] = set()
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            interval = pair_interval(a, b)
            tied = _contains_one(interval)
            if tied is False:
                clear.add((a.alias, b.alias) if interval.estimate >= 1 else (b.alias, a.alias))
            pairs.append(_pair_json(a.alias, b.alias, interval))
    return pairs, clear


def _pair_json(a: str, b: str, interval: Interval) -> dict[str, object]:
    return {
        "a": a,
        "b": b,
        "ratio": interval.as_json(),
        "ci_method": interval.method,
        "tied": _contains_one(interval),
    }


def _scaled(interval: Interval, factor: float) -> Interval:
    low, high = interval.ci_low, interval.ci_high
    return Interval(
        interval.estimate * factor,
        None if low is None else low * factor,
        None if high is None else high * factor,
        interval.method,
    )


def per_dollar_pairs(
    found: list[Contender], prices: dict[str, float | None]
) -> list[dict[str, object]]:
    """Every pair of priced types per dollar: b's time x $/h ÷ a's (above 1: a does the
    work for less), a before b in per-dollar order, from the same replicates as `_pairs`."""
    usd = {c.alias: p for c in found if (p := prices.get(c.alias)) is not None and p > 0}
    order = sorted(
        (c for c in found if c.alias in usd), key=lambda c: c.log_time + math.log(usd[c.alias])
    )
    out = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            interval = _scaled(pair_interval(a, b), usd[b.alias] / usd[a.alias])
            out.append(_pair_json(a.alias, b.alias, interval))
    return out


def compare(
    found: list[Contender],
    baseline: str,
    prices: dict[str, float | None],
    seed: int,
    exe: str,
    names: list[str],
) -> Comparison:
    by_alias = {c.alias: c for c in found}
    base = by_alias[baseline]
    vs = {c.alias: REFERENCE if c is base else pair_interval(c, base) for c in found}
    order = sorted(found, key=lambda c: c.log_time)
    pairs, clear = _pairs(found)
    tied: dict[str, list[str]] = {c.alias: [] for c in found}
    for pair in pairs:
        if pair["tied"] is True:
            tied[str(pair["a"])].append(str(pair["b"]))
            tied[str(pair["b"])].append(str(pair["a"]))
    method, table = replicates(found, seed, exe)
    ranks: dict[str, list[int] | None] = dict.fromkeys(by_alias)
    fastest: dict[str, float | None] = dict.fromkeys(by_alias)
    per_dollar: dict[str, float | None] = dict.fromkeys(by_alias)
    if table is not None and table.shape[1] > 0:
        best, intervals = _probabilities(table)
        fastest.update(zip(by_alias, best, strict=True))
        ranks.update(zip(by_alias, intervals, strict=True))
        priced = [i for i, c in enumerate(found) if prices.get(c.alias) is not None]
        if priced:
            usd = np.asarray([[prices[found[i].alias] or math.nan] for i in priced])
            costs = table[priced] + np.log(usd)
            cheapest, _ = _probabilities(costs)
            per_dollar.update({found[i].alias: p for i, p in zip(priced, cheapest, strict=True)})
    return Comparison(
        names=names,
        method=method,
        vs_baseline=vs,
        rank={c.alias: i + 1 for i, c in enumerate(order)},
        tied=tied,
        pairs=pairs,
        per_dollar_pairs=per_dollar_pairs(found, prices),
        clearly_faster=clear,
        rank_interval=ranks,
        prob_fastest=fastest,
        prob_best_per_dollar=per_dollar,
    )


def pareto_status(alias: str, prices: dict[str, float | None], cmp: Comparison) -> str | None:
    """ "front": every type at most as expensive is clearly slower; "dominated": one of them
    is clearly faster; "undecided": otherwise (intervals overlap). None without a price."""
    price = prices.get(alias)
    if price is None or alias not in cmp.rank:
        return None
    rivals = [b for b in cmp.rank if b != alias and (p := prices.get(b)) is not None and p <= price]
    if any((b, alias) in cmp.clearly_faster for b in rivals):
        return "dominated"
    if all((alias, b) in cmp.clearly_faster for b in rivals):
        return "front"
    return "undecided"

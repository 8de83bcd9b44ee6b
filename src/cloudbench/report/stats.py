"""The statistics of a report: intervals that treat one task (or machine) as the unit.

A *group* is one (alias, executable): a matrix of per-task values, tasks x benchmarks
(NaN where a task has no value), plus the machine each task ran on. Replication units
are machines when a group spans two or more, else its tasks (then the interval cannot
contain machine-to-machine variation, and the report says so).

Two interval methods, chosen per comparison from the smallest unit count involved:
- ``bootstrap`` (>= BOOTSTRAP_MIN_UNITS units): hierarchical percentile bootstrap that
  resamples machines, then tasks within each drawn machine; seeded.
- ``t`` (2 .. BOOTSTRAP_MIN_UNITS-1 units): a percentile bootstrap under-covers here, so
  a t interval on unit means, on the log scale for ratios (delta method, Welch df).
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import stats

Array = NDArray[np.float64]

BOOTSTRAP_MIN_UNITS = 10
N_BOOT = 2000
LEVEL = 0.95
# Outliers: with fewer tasks the MAD is itself noise (3 tasks: any rule flags ~1 group in
# 4 of pure noise); at 10 tasks, 6 MADs flags ~2 % of noise-only groups and catches a task
# 10 SDs off ~9 times in 10 (simulated, docs/report.md).
MIN_OUTLIER_TASKS = 10
OUTLIER_MADS = 6


@dataclass(frozen=True)
class Interval:
    estimate: float
    ci_low: float | None
    ci_high: float | None
    method: str  # "bootstrap", "t", "reference" (the baseline itself, no interval) or "none"

    def as_json(self) -> dict[str, float | None]:
        return {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass
class Group:
    values: Array  # tasks x benchmarks
    machines: NDArray[np.int64]  # machine index per task (0..M-1)
    seed: int
    # Bootstrap replicate means, computed once: every row and geomean reuses them.
    boot: Array | None = field(default=None, repr=False)
    log_boot: Array | None = field(default=None, repr=False)

    @property
    def n_machines(self) -> int:
        return int(self.machines.max()) + 1 if self.machines.size else 0

    def units(self) -> NDArray[np.int64]:
        """Unit index per task: machines when there are two or more, else tasks."""
        if self.n_machines >= 2:
            return self.machines
        return np.arange(len(self.values), dtype=np.int64)

    @property
    def n_units(self) -> int:
        return int(self.units().max()) + 1 if self.values.size else 0


def seed_for(base: int, *parts: str) -> int:
    """A stable seed per group, so adding a type leaves the others' intervals unchanged."""
    return zlib.crc32("\x1f".join((str(base), *parts)).encode())


def machine_index(labels: list[str]) -> NDArray[np.int64]:
    _, inverse = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    return inverse.astype(np.int64)


def nanmean_cols(values: Array) -> Array:
    counts = (~np.isnan(values)).sum(axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, np.nansum(values, axis=0) / np.maximum(counts, 1), np.nan)


def unit_means(values: Array, units: NDArray[np.int64]) -> Array:
    """Units x benchmarks: the mean of each unit's tasks (NaN where it has none)."""
    n_units = int(units.max()) + 1
    present = (~np.isnan(values)).astype(float)
    sums = np.zeros((n_units, values.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, units, np.nan_to_num(values))
    np.add.at(counts, units, present)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def boot_weights(group: Group, n_boot: int = N_BOOT) -> Array:
    """Replicates x tasks: how often each task is drawn (machines, then tasks within)."""
    rng = np.random.default_rng(group.seed)
    units = group.units()
    n_units, n_tasks = int(units.max()) + 1, len(units)
    if group.n_machines < 2:
        return rng.multinomial(n_tasks, np.full(n_tasks, 1 / n_tasks), size=n_boot).astype(float)
    drawn = rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=n_boot)
    weights = np.zeros((n_boot, n_tasks))
    for unit in range(n_units):
        tasks = np.flatnonzero(units == unit)
        size = len(tasks)
        weights[:, tasks] = rng.multinomial(drawn[:, unit] * size, np.full(size, 1 / size))
    return weights


def replicate_means(weights: Array, values: Array) -> Array:
    """Replicates x benchmarks: the weighted task-mean of each replicate, NaN-aware."""
    # einsum, not `@`: for these small products a multi-threaded BLAS on a busy machine
    # spends ten times longer synchronising its threads than computing.
    present = (~np.isnan(values)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(
            np.einsum("rt,tb->rb", weights, np.nan_to_num(values))
            / np.einsum("rt,tb->rb", weights, present)
        )


def boot_means(group: Group, n_boot: int = N_BOOT) -> Array:
    """Replicates x benchmarks: the task-mean of each bootstrap replicate (cached)."""
    if group.boot is None:
        group.boot = replicate_means(boot_weights(group, n_boot), group.values)
    return group.boot


def log_boot_means(group: Group, *, cache: bool = False) -> Array:
    """log of boot_means; cached only on request (the baseline's, used against every type),
    as a cache on every group would double a large report's memory."""
    if group.log_boot is not None:
        return group.log_boot
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(boot_means(group))
    if cache:
        group.log_boot = logs
    return logs


def method_for(*groups: Group) -> str:
    fewest = min(g.n_units for g in groups)
    if fewest >= BOOTSTRAP_MIN_UNITS:
        return "bootstrap"
    return "t" if fewest >= 2 else "none"


def percentile_interval(samples: Array, estimate: float, method: str = "bootstrap") -> Interval:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Interval(estimate, None, None, "none")
    alpha = (1 - LEVEL) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return Interval(estimate, float(low), float(high), method)


def log_geomean_score(group: Group, columns: NDArray[np.int64]) -> tuple[float, float, int]:
    """log of the geomean of column means, its delta-method variance and its df."""
    values = group.values[:, columns]
    means = nanmean_cols(values)
    per_unit = unit_means(values, group.units()) / means
    # Influence of each unit on log G: the mean over benchmarks of its relative value
    # (NaN for a unit with none of these benchmarks, dropped below).
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scores = np.nanmean(per_unit, axis=1)
    scores = scores[np.isfinite(scores)]
    n = scores.size
    variance = float(np.var(scores, ddof=1)) / n if n >= 2 else math.nan
    return float(np.mean(np.log(means))), variance, n - 1


def welch_log_interval(log_ratio: float, parts: list[tuple[float, int]]) -> Interval:
    """exp(log_ratio ± t·se) with se² the sum of the parts' variances, Welch df."""
    if any(not math.isfinite(v) or df < 1 for v, df in parts):
        return Interval(math.exp(log_ratio), None, None, "none")
    variance = sum(v for v, _ in parts)
    if variance == 0:
        return Interval(math.exp(log_ratio), math.exp(log_ratio), math.exp(log_ratio), "t")
    df = variance**2 / sum(v**2 / d for v, d in parts if v > 0)
    half = float(stats.t.ppf(1 - (1 - LEVEL) / 2, df)) * math.sqrt(variance)
    return Interval(
        math.exp(log_ratio), math.exp(log_ratio - half), math.exp(log_ratio + half), "t"
    )


def speedup_interval(base: Group, other: Group, columns: NDArray[np.int64]) -> Interval:
    """Geomean over `columns` of base time ÷ other time (one column: a plain ratio)."""
    if base is other:
        return Interval(1.0, None, None, "reference")
    log_b, var_b, df_b = log_geomean_score(base, columns)
    log_o, var_o, df_o = log_geomean_score(other, columns)
    method = method_for(base, other)
    if method == "bootstrap":
        logs = log_boot_means(base, cache=True)[:, columns] - log_boot_means(other)[:, columns]
        samples = np.mean(logs, axis=1)
        return percentile_interval(np.exp(samples), math.exp(log_b - log_o))
    if method == "none":
        return Interval(math.exp(log_b - log_o), None, None, "none")
    return welch_log_interval(log_b - log_o, [(var_b, df_b), (var_o, df_o)])


def paired_speedup_interval(slow: Group, fast: Group, columns: NDArray[np.int64]) -> Interval:
    """Geomean of slow ÷ fast where both groups hold the same tasks (e.g. interp, yjit)."""
    log_s = float(np.mean(np.log(nanmean_cols(slow.values[:, columns]))))
    log_f = float(np.mean(np.log(nanmean_cols(fast.values[:, columns]))))
    estimate = math.exp(log_s - log_f)
    method = method_for(slow)
    if method == "bootstrap":
        weights = boot_weights(slow)
        sums = []
        for group in (slow, fast):
            values = group.values[:, columns]
            with np.errstate(invalid="ignore", divide="ignore"):
                sums.append(np.log(replicate_means(weights, values)))
        return percentile_interval(np.exp(np.mean(sums[0] - sums[1], axis=1)), estimate)
    if method == "none":
        return Interval(estimate, None, None, "none")
    units = slow.units()
    diff = []
    for group in (slow, fast):
        values = group.values[:, columns]
        diff.append(np.nanmean(unit_means(values, units) / nanmean_cols(values), axis=1))
    scores = diff[0] - diff[1]
    scores = scores[np.isfinite(scores)]
    variance = float(np.var(scores, ddof=1)) / scores.size if scores.size >= 2 else math.nan
    return welch_log_interval(log_s - log_f, [(variance, scores.size - 1)])


def outliers(values: Array) -> NDArray[np.bool_]:
    """Tasks x benchmarks: beyond OUTLIER_MADS (normal-scaled) MADs of their benchmark's
    median, in columns with >= MIN_OUTLIER_TASKS values (docs/report.md says why)."""
    counts = (~np.isnan(values)).sum(axis=0)
    usable = counts >= MIN_OUTLIER_TASKS
    flagged = np.zeros(values.shape, dtype=bool)
    if not usable.any():
        return flagged
    kept = values[:, usable]
    with np.errstate(invalid="ignore"):
        median = np.nanmedian(kept, axis=0)
        mad = stats.median_abs_deviation(kept, axis=0, scale="normal", nan_policy="omit")
        flagged[:, usable] = (np.abs(kept - median) > OUTLIER_MADS * mad) & (mad > 0)
    return flagged

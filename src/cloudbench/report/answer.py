"""The answer in one or two sentences: which type is fastest, which is best per dollar,
or plainly that the data cannot tell them apart, and what more tasks would cost.

Everything here reads summary.json: the per-type figures (`prob_fastest`,
`prob_best_per_dollar`) and the headline executable's pairwise comparisons
(`pairwise[exe].pairs` by speed, `.per_dollar` per dollar; see `Pairs`), so that "cannot
be told apart" is exactly a pair's `tied` flag and the numbers are the pairs' own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from statistics import median
from typing import Any

from scipy import stats

from cloudbench.report.merge import ResultSet
from cloudbench.report.stats import Interval

POWER = 0.8  # the chance that the suggested number of tasks separates the two
ALPHA = 0.05
MAX_TASKS = 200
SPEED, PER_DOLLAR = "geomean_speedup", "perf_per_dollar"


@dataclass(frozen=True)
class Found:
    """One pair read from summary.json: a over b (above 1: a is better) and its flag."""

    interval: Interval
    tied: bool | None  # None: no interval (one unit), so not told apart


def _interval(entry: dict[str, Any]) -> Interval:
    r = entry["ratio"]
    return Interval(r["estimate"], r["ci_low"], r["ci_high"], str(entry["ci_method"]))


def _inverse(found: Found) -> Found:
    i = found.interval
    low, high = i.ci_low, i.ci_high
    flipped = Interval(
        1 / i.estimate,
        None if high is None else 1 / high,
        None if low is None else 1 / low,
        i.method,
    )
    return Found(flipped, found.tied)


class Pairs:
    """summary.json `pairwise` of the headline executable, looked up in either order."""

    def __init__(self, summary: dict[str, Any]):
        chosen = (summary.get("pairwise") or {}).get(summary["headline_executable"]) or {}
        self.found: dict[tuple[str, str, str], Found] = {}
        for key, field in ((SPEED, "pairs"), (PER_DOLLAR, "per_dollar")):
            for entry in chosen.get(field) or []:
                self.found[(key, entry["a"], entry["b"])] = Found(_interval(entry), entry["tied"])

    def of(self, key: str, a: str, b: str) -> Found | None:
        """a over b by speed (key SPEED) or per dollar (PER_DOLLAR); None: not compared."""
        if (key, a, b) in self.found:
            return self.found[(key, a, b)]
        reverse = self.found.get((key, b, a))
        return None if reverse is None else _inverse(reverse)


def task_hours(results: ResultSet) -> dict[str, float | None]:
    """Per alias: the median wall time of one task, in hours, from metadata.json."""
    out: dict[str, list[float]] = {a: [] for a in results.aliases}
    for task in results.tasks:
        start, end = task.metadata.get("started_at"), task.metadata.get("finished_at")
        try:
            seconds = datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))
        except (TypeError, ValueError):
            continue
        if seconds.total_seconds() > 0:
            out.setdefault(task.alias, []).append(seconds.total_seconds() / 3600)
    return {a: (median(v) if v else None) for a, v in out.items()}


@dataclass(frozen=True)
class Contest:
    """One question (speed or speed per dollar): entries in order, best first."""

    what: str  # "fastest" or "best per dollar"
    key: str  # the summary field ranked: geomean_speedup or perf_per_dollar
    order: list[dict[str, Any]]


def ratio(interval: Interval, other: str) -> str:
    """ "1.08x c7g [95% CI 1.03, 1.13]": a's speed (or perf per dollar) over `other`'s."""
    if interval.ci_low is None or interval.ci_high is None:
        return f"{interval.estimate:.2f}x {other} (no interval: one task or machine)"
    return (
        f"{interval.estimate:.2f}x {other} [95% CI {interval.ci_low:.2f}, {interval.ci_high:.2f}]"
    )


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n != 1 else f"1 {word.removesuffix('s')}"


def units(entry: dict[str, Any]) -> int:
    return int(entry["machines"] if entry["machines"] >= 2 else entry["tasks"])


def probability(entry: dict[str, Any], what: str) -> float | None:
    """The probability of being fastest / best per dollar (summary.json, from the same
    replicates as the pairs); None when it has none (one unit, or no price)."""
    key = "prob_fastest" if what == "fastest" else "prob_best_per_dollar"
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) else None


def more_tasks(interval: Interval, n: int) -> int | None:
    """Tasks per type to add so that a difference as large as observed would be found
    with POWER at ALPHA (normal approximation, spread as observed); None: too many."""
    if interval.ci_low is None or interval.ci_high is None or n < 2:
        return None
    # The interval's half-width in standard errors: t (df of two groups of n) or normal.
    width = (
        stats.norm.ppf(0.975)
        if interval.method == "bootstrap"
        else stats.t.ppf(0.975, max(2 * n - 2, 1))
    )
    se = (math.log(interval.ci_high) - math.log(interval.ci_low)) / (2 * width)
    effect = abs(math.log(interval.estimate))
    if se <= 0 or effect < 1e-9:
        return None
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)
    needed = math.ceil(n * (z * se / effect) ** 2)
    return None if needed > MAX_TASKS else max(needed - n, 1)


def _names(aliases: list[str]) -> str:
    return aliases[0] if len(aliases) == 1 else ", ".join(aliases[:-1]) + " and " + aliases[-1]


class Answer:
    def __init__(self, summary: dict[str, Any], pairs: Pairs, hours: dict[str, float | None]):
        self.summary, self.pairs, self.hours = summary, pairs, hours
        self.by_alias = {t["alias"]: t for t in summary["instance_types"]}

    def cost(self, aliases: list[str], tasks: int) -> float | None:
        total = 0.0
        for alias in aliases:
            price, hours = self.by_alias[alias]["usd_per_hour"], self.hours.get(alias)
            if price is None or hours is None:
                return None
            total += tasks * hours * price
        return total

    def sentence(self, contest: Contest) -> tuple[str, str | None]:
        """(the sentence, the winning alias or None when the data cannot tell)."""
        leader, rest = contest.order[0], contest.order[1:]
        alias = leader["alias"]
        found = {o["alias"]: self.pairs.of(contest.key, alias, o["alias"]) for o in rest}
        # Told apart exactly when the pair's `tied` flag is false (its interval excludes 1).
        tied = [other for other, f in found.items() if f is None or f.tied is not False]
        runner = rest[0]["alias"]
        runner_pair = found[runner]
        versus = runner_pair.interval if runner_pair else None
        if tied or versus is None:
            return self._undecided(contest, [alias, *tied], runner, versus), None
        text = f"{contest.what.capitalize()}: {alias}, {ratio(versus, 'the runner-up ' + runner)}"
        base = self.summary["baseline"]
        overall = leader[contest.key]
        if alias != base and runner != base and overall:
            against = Interval(overall["estimate"], overall["ci_low"], overall["ci_high"], "")
            text += f" ({ratio(against, 'the baseline ' + base)})"
        chance = probability(leader, contest.what)
        if chance is not None:
            text += f"; probability of being {contest.what} {100 * chance:.0f}%"
        return text + ".", alias

    def _undecided(
        self, contest: Contest, group: list[str], runner: str, versus: Interval | None
    ) -> str:
        pair = [group[0], runner]  # the leader and the runner-up: what the numbers are about
        n = min(units(self.by_alias[a]) for a in pair)
        kind = "machines" if all(self.by_alias[a]["machines"] >= 2 for a in pair) else "tasks"
        basis = "" if contest.key == SPEED else " per dollar"
        text = f"{_names(group)} cannot be told apart{basis} with {plural(n, kind)} each"
        if versus is None:
            return text + "."
        text += f": {group[0]} is {ratio(versus, runner)}."
        if versus.ci_low is None:
            return text + f" An interval needs at least 2 {kind} per type; run 3 or more."
        more = more_tasks(versus, n)
        if more is None:
            return text + (
                f" Their difference is too small for more {kind} to settle it "
                f"(more than {MAX_TASKS} each)."
            )
        text += f" About {plural(more, 'more ' + kind)} per type would likely separate them"
        usd = self.cost(pair, more)
        if usd is not None:
            text += f" (about ${usd:,.2f} at the recorded prices)"
        return text + "."

    def contests(self) -> list[Contest]:
        types = [t for t in self.summary["instance_types"] if t["geomean_speedup"]]
        speed = sorted(types, key=lambda t: -t["geomean_speedup"]["estimate"])
        priced = sorted(
            (t for t in types if t["perf_per_dollar"]),
            key=lambda t: -t["perf_per_dollar"]["estimate"],
        )
        return [Contest("fastest", SPEED, speed), Contest("best per dollar", PER_DOLLAR, priced)]

    def build(self) -> dict[str, Any]:
        speed, money = self.contests()
        out: dict[str, Any] = {"sentences": [], "fastest": None, "best_per_dollar": None}
        if len(speed.order) < 2:
            only = speed.order[0]["alias"] if speed.order else "no type"
            out["sentences"].append(f"Only {only} has results: nothing to compare it with.")
            if speed.order and speed.order[0]["usd_per_hour"] is None:
                out["sentences"].append(self.no_price([only]))
            return out
        text, out["fastest"] = self.sentence(speed)
        out["sentences"].append(text)
        unpriced = [t["alias"] for t in speed.order if t["usd_per_hour"] is None]
        if len(money.order) >= 2:
            text, out["best_per_dollar"] = self.sentence(money)
            if unpriced:
                text += f" Not priced, so not compared per dollar: {_names(unpriced)}."
            out["sentences"].append(text)
        else:
            out["sentences"].append(self.no_price(unpriced))
        return out

    def no_price(self, unpriced: list[str]) -> str:
        which = "any instance type" if len(unpriced) == len(self.by_alias) else _names(unpriced)
        return (
            f"Best per dollar: not known, no price for {which} (give --prices FILE or "
            'the config\'s "prices").'
        )


def grouped_notes(summary: dict[str, Any]) -> list[str]:
    """Every type's notes said once: a note shared by several types names them together."""
    one_machine = [
        t["alias"]
        for t in summary["instance_types"]
        if any("ran on one machine" in n for n in t["notes"])
    ]
    seen: dict[str, list[str]] = {}
    for t in summary["instance_types"]:
        for note in t["notes"]:
            if "ran on one machine" in note or note.startswith("local runners on one machine"):
                continue
            seen.setdefault(note, []).append(t["alias"])
    notes = [f"{_names(aliases)}: {note}" for note, aliases in seen.items()]
    if one_machine:
        each = " each" if len(one_machine) > 1 else ""
        local = any(
            t["provider"] == "local" and t["alias"] in one_machine
            for t in summary["instance_types"]
        )
        why = " (local runners on one machine are one machine)" if local else ""
        notes.insert(
            0,
            f"{_names(one_machine)}: every task ran on one machine{each}{why}, so "
            "the intervals cannot include machine-to-machine variation.",
        )
    notes += summary.get("notes", [])
    if summary["excluded"]:
        notes.append(
            f"{len(summary['excluded'])} task(s) or benchmark(s) excluded: see "
            '"Excluded and flagged".'
        )
    return notes


def answer(results: ResultSet, summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json's `answer`: sentences, fastest, best_per_dollar (None: cannot tell), notes."""
    built = Answer(summary, Pairs(summary), task_hours(results)).build()
    return {**built, "notes": grouped_notes(summary)}

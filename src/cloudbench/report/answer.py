"""The answer in one or two sentences: which type is fastest, which is best per dollar,
or plainly that the data cannot tell them apart, and what more tasks would cost.

Everything here reads summary.json's per-type figures plus one pairwise comparison per
question, given by a `Pair` function (see `pairwise`): the only place that computes a
figure of its own, so that it can read summary.json's pairwise comparisons instead once
they exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from statistics import median
from typing import Any

import numpy as np
from scipy import stats

from cloudbench.report.groups import build_cells
from cloudbench.report.merge import ResultSet
from cloudbench.report.stats import Interval, speedup_interval

# Speed of type a over type b (b's time ÷ a's time, geomean over the headline set).
Pair = Callable[[str, str], Interval | None]
POWER = 0.8  # the chance that the suggested number of tasks separates the two
ALPHA = 0.05
MAX_TASKS = 200


def pairwise(results: ResultSet, summary: dict[str, Any]) -> Pair:
    """a over b on the headline executable and benchmark set, from the per-task values.

    The same interval method as every other speedup (t on unit means, or the bootstrap).
    """
    cells = build_cells(results, summary["seed"])
    exe = summary["headline_executable"]
    names = summary["geomean_benchmarks"].get(exe) or []

    def pair(a: str, b: str) -> Interval | None:
        cell_a, cell_b = cells.get((a, exe)), cells.get((b, exe))
        if cell_a is None or cell_b is None or not names:
            return None
        columns = np.asarray([cell_b.column(n) for n in names])
        return speedup_interval(cell_b.group, cell_a.group, columns)

    return pair


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
    """The probability of being fastest / best per dollar, when summary.json has it."""
    key = "p_fastest" if what == "fastest" else "p_best_per_dollar"
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) else None


def more_tasks(interval: Interval, n: int) -> int | None:
    """Tasks per type to add so that a difference as large as observed would be found
    with POWER at ALPHA (normal approximation, spread as observed); None: too many."""
    if interval.ci_low is None or interval.ci_high is None or n < 2:
        return None
    # The interval's half-width in standard errors: t (df of two groups of n) or normal.
    width = stats.norm.ppf(0.975) if interval.method == "bootstrap" else stats.t.ppf(
        0.975, max(2 * n - 2, 1))  # fmt: skip
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
    def __init__(self, summary: dict[str, Any], pair: Pair, hours: dict[str, float | None]):
        self.summary, self.pair, self.hours = summary, pair, hours
        self.by_alias = {t["alias"]: t for t in summary["instance_types"]}

    def _pair(self, contest: Contest, a: str, b: str) -> Interval | None:
        speed = self.pair(a, b)
        if speed is None or contest.key == "geomean_speedup":
            return speed
        scale = self.by_alias[b]["usd_per_hour"] / self.by_alias[a]["usd_per_hour"]
        low, high = speed.ci_low, speed.ci_high
        return Interval(speed.estimate * scale, None if low is None else low * scale,
                        None if high is None else high * scale, speed.method)  # fmt: skip

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
        tied = [o["alias"] for o in rest
                if (p := self._pair(contest, alias, o["alias"])) is None
                or p.ci_low is None or p.ci_low <= 1]  # fmt: skip
        runner = rest[0]["alias"]
        versus = self._pair(contest, alias, runner)
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
        basis = "" if contest.key == "geomean_speedup" else " per dollar"
        text = f"{_names(group)} cannot be told apart{basis} with {plural(n, kind)} each"
        if versus is None:
            return text + "."
        text += f": {group[0]} is {ratio(versus, runner)}."
        if versus.ci_low is None:
            return text + f" An interval needs at least 2 {kind} per type; run 3 or more."
        more = more_tasks(versus, n)
        if more is None:
            return text + (f" Their difference is too small for more {kind} to settle it "
                           f"(more than {MAX_TASKS} each).")  # fmt: skip
        text += f" About {plural(more, 'more ' + kind)} per type would likely separate them"
        usd = self.cost(pair, more)
        if usd is not None:
            text += f" (about ${usd:,.2f} at the recorded prices)"
        return text + "."

    def contests(self) -> list[Contest]:
        types = [t for t in self.summary["instance_types"] if t["geomean_speedup"]]
        speed = sorted(types, key=lambda t: -t["geomean_speedup"]["estimate"])
        priced = sorted((t for t in types if t["perf_per_dollar"]),
                        key=lambda t: -t["perf_per_dollar"]["estimate"])  # fmt: skip
        return [Contest("fastest", "geomean_speedup", speed),
                Contest("best per dollar", "perf_per_dollar", priced)]  # fmt: skip

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
        which = ("any instance type" if len(unpriced) == len(self.by_alias)
                 else _names(unpriced))  # fmt: skip
        return (f"Best per dollar: not known, no price for {which} (give --prices FILE or "
                "the config's \"prices\").")  # fmt: skip


def grouped_notes(summary: dict[str, Any]) -> list[str]:
    """Every type's notes said once: a note shared by several types names them together."""
    one_machine = [t["alias"] for t in summary["instance_types"]
                   if any("ran on one machine" in n for n in t["notes"])]  # fmt: skip
    seen: dict[str, list[str]] = {}
    for t in summary["instance_types"]:
        for note in t["notes"]:
            if "ran on one machine" in note or note.startswith("local runners on one machine"):
                continue
            seen.setdefault(note, []).append(t["alias"])
    notes = [f"{_names(aliases)}: {note}" for note, aliases in seen.items()]
    if one_machine:
        each = " each" if len(one_machine) > 1 else ""
        local = any(t["provider"] == "local" and t["alias"] in one_machine
                    for t in summary["instance_types"])  # fmt: skip
        why = " (local runners on one machine are one machine)" if local else ""
        notes.insert(0, f"{_names(one_machine)}: every task ran on one machine{each}{why}, so "
                     "the intervals cannot include machine-to-machine variation.")  # fmt: skip
    notes += summary.get("notes", [])
    if summary["excluded"]:
        notes.append(f"{len(summary['excluded'])} task(s) or benchmark(s) excluded: see "
                     "\"Excluded and flagged\".")  # fmt: skip
    return notes


def answer(results: ResultSet, summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json's `answer`: sentences, fastest, best_per_dollar (None: cannot tell), notes."""
    built = Answer(summary, pairwise(results, summary), task_hours(results)).build()
    return {**built, "notes": grouped_notes(summary)}

"""Writing a report: index.html, summary.json, summary.csv, summary.md."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import jinja2

from cloudbench.report import charts, matrix, view
from cloudbench.report.merge import ResultSet

CSV_COLUMNS = (
    "alias",
    "executable",
    "name",
    "tasks",
    "machines",
    "mean_s",
    "ci_low_s",
    "ci_high_s",
    "median_s",
    "sd_s",
    "cv",
    "cv_between_machines",
    "cv_within_machine",
    "cv_within_process",
    "speedup",
    "speedup_ci_low",
    "speedup_ci_high",
    "maxrss_bytes",
    "maxrss_ratio",
    "warmup_trend",
    "usd_per_iteration",
    "ci_method",
)


def f3(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def g4(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def f2(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def ci(interval: dict[str, Any] | None) -> str:
    if not interval or interval.get("ci_low") is None:
        return "-"
    return f"[{f3(interval['ci_low'])}, {f3(interval['ci_high'])}]"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cloudbench.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
    )
    env.globals.update(
        f3=f3,
        f2=f2,
        g4=g4,
        pct=pct,
        ci=ci,
        geomean_over=geomean_over,
        cost_rows=cost_rows,
        rank_label=view.rank_label,
        hardware_text=view.hardware_text,
        speedup_rows=matrix.speedup_rows,
    )
    return env


def figures(results: ResultSet, summary: dict[str, Any]) -> list[dict[str, Any]]:
    found = [charts.forest(summary), charts.pareto(summary)]
    found += charts.strips(results, summary) + charts.warmups(results, summary)
    return [f for f in found if f is not None]


# Runner-written text (benchmark names, errors) reaches the figures: "</script>" would end
# the element, "<!--<script>" makes the HTML parser read past its end. JSON.parse reads
# the escapes back; the HTML parser sees no markup at all.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element, whatever its strings hold."""
    return json.dumps(value, allow_nan=False).translate(_SCRIPT_SAFE)


def html(results: ResultSet, summary: dict[str, Any]) -> str:
    from plotly.offline import get_plotlyjs  # only when rendering: plotly is slow to import

    figs = figures(results, summary)
    figures_json = script_json(figs)
    priced = any(t["usd_per_hour"] is not None for t in summary["instance_types"])
    template = _environment().get_template("report.html.j2")
    return template.render(
        s=summary,
        figures=figs,
        figures_json=figures_json,
        plotly_js=get_plotlyjs(),
        priced=priced,
        grid=view.grid(summary),
        hardware=view.hardware(results),
        settings=view.settings_text(results),
    )


def csv_text(summary: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in summary["benchmarks"]:
        speedup = row["speedup"] or {}
        writer.writerow(
            {
                **row,
                "speedup": speedup.get("estimate"),
                "speedup_ci_low": speedup.get("ci_low"),
                "speedup_ci_high": speedup.get("ci_high"),
            }
        )
    return out.getvalue()


def ranking_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in summary["instance_types"]:
        price = t["price_note"] if t["usd_per_hour"] is None else f"{t['usd_per_hour']:.4f}"
        speed, money = t["geomean_speedup"], t["perf_per_dollar"]
        rows.append(
            [
                view.rank_label(t, summary),
                t["alias"],
                f"{t['provider']}/{t['instance_type']}",
                str(t["tasks"]),
                str(t["machines"]),
                f3(speed["estimate"] if speed else None),
                "reference" if t.get("reference") else ci(speed),
                pct(t["prob_fastest"]),
                price,
                f3(money["estimate"] if money else None),
                pct(t["prob_best_per_dollar"]),
                f3(t["yjit_speedup"]["estimate"] if t["yjit_speedup"] else None),
                ", ".join(t["tied_with"]) or "-",
            ]
        )
    return rows


def geomean_over(summary: dict[str, Any], exe: str | None = None) -> str:
    """Which benchmarks the headline geomean ran over, in words."""
    exe = exe or summary["headline_executable"]
    count = len(summary["geomean_benchmarks"].get(exe, []))
    if summary["geomean_category"].get(exe) == "headline":
        return f"the {count} headline benchmarks every compared type ran"
    if summary["benchmark_categories"]:
        return f"all {count} benchmarks every compared type ran (none is a headline benchmark)"
    return f"all {count} benchmarks every compared type ran (categories not recorded)"


def cost_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Per type with a cost-ledger entry: VMs, instance-hours, USD."""
    rows = []
    for t in summary["instance_types"]:
        cost = t["cost"]
        if cost:
            usd = "no price" if cost["usd"] is None else f"{cost['usd']:.2f}"
            rows.append([t["alias"], str(cost["vms"]), f"{cost['instance_hours']:.3f}", usd])
    return rows


RANKING_HEADER = [
    "rank (95%)",
    "alias",
    "instance type",
    "tasks",
    "machines",
    "speedup",
    "95% CI",
    "P(fastest)",
    "$/h",
    "perf/$",
    "P(best per $)",
    "YJIT x",
    "tied with",
]


def markdown(summary: dict[str, Any]) -> str:
    answer = summary.get("answer") or {}
    lines = [
        f"## cloudbench report: {summary['ruby_description'] or 'Ruby'}",
        "",
        *answer.get("sentences", []),
        *(summary.get("comparison") or {}).get("sentences", []),
        "",
        f"Baseline `{summary['baseline']}`, executable `{summary['headline_executable']}`, "
        f"geomean over {geomean_over(summary)}; 95% intervals (see method in the HTML report).",
        "",
        "| " + " | ".join(RANKING_HEADER) + " |",
        "|" + "---|" * len(RANKING_HEADER),
        *("| " + " | ".join(r) + " |" for r in ranking_rows(summary)),
    ]
    ledger = summary["cost_ledger"]
    if ledger and ledger["runs"]:
        meta = ledger.get("meta_usd") or 0.0
        shared = f" (of which {meta:.2f} USD the AWS meta deployment)" if meta else ""
        lines += [
            "",
            f"Run cost (cost ledger): {ledger['total_usd']:.2f} USD priced{shared}"
            + (f"; unpriced: {', '.join(ledger['unpriced'])}" if ledger["unpriced"] else ""),
            "",
            "| alias | VMs | instance-hours | USD |",
            "|---|---|---|---|",
            *("| " + " | ".join(r) + " |" for r in cost_rows(summary)),
        ]
    ratios = matrix.speedup_rows(summary["matrix"])
    if ratios:
        lines += [
            "",
            f"Ruby matrix (headline `{summary['headline_executable']}`: "
            f"{summary['headline_chosen']}); paired within tasks, 95% intervals:",
            "",
            "| type | column | over | change |",
            "|---|---|---|---|",
            *(f"| {r['alias']} | {r['label']} | {r['vs']} | {r['change']} |" for r in ratios),
        ]
    notes = [f"- {n}" for n in answer.get("notes", [])]
    return "\n".join([*lines, "", *notes, ""])


def write(results: ResultSet, summary: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    (out / "summary.csv").write_text(csv_text(summary))
    (out / "summary.md").write_text(markdown(summary))
    index = out / "index.html"
    index.write_text(html(results, summary), encoding="utf-8")
    return index

"""Plotly figure specs (plain dicts) for the HTML page; plotly.js is inlined there."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cloudbench.report.merge import ResultSet

Figure = dict[str, Any]
_LAYOUT = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "autosize": True,
           "font": {"family": "system-ui, sans-serif", "size": 12}}  # fmt: skip


def _figure(fid: str, title: str, data: list[dict[str, Any]], **layout: Any) -> Figure:
    return {"id": fid, "title": title, "data": data,
            "layout": {**_LAYOUT, "title": {"text": title}, **layout}}  # fmt: skip


def forest(summary: dict[str, Any]) -> Figure:
    types = [t for t in summary["instance_types"] if t["geomean_speedup"]]
    est = [t["geomean_speedup"]["estimate"] for t in types]
    low = [t["geomean_speedup"]["ci_low"] for t in types]
    high = [t["geomean_speedup"]["ci_high"] for t in types]
    trace = {
        "type": "scatter", "mode": "markers", "x": est, "y": [t["alias"] for t in types],
        "error_x": {"type": "data", "symmetric": False,
                    "array": [h - e if h is not None else 0 for h, e in zip(high, est, strict=True)],  # noqa: E501
                    "arrayminus": [e - lo if lo is not None else 0 for lo, e in zip(low, est, strict=True)]},  # noqa: E501
        "hovertemplate": "%{y}: %{x:.3f}x<extra></extra>",
    }  # fmt: skip
    height = 120 + 22 * len(types)
    return _figure("forest", f"Geomean speedup vs {summary['baseline']} "
                   f"({summary['headline_executable']}), 95% CI", [trace], height=height,
                   xaxis={"type": "log", "title": {"text": "speedup (log scale)"}},
                   yaxis={"autorange": "reversed", "automargin": True},
                   shapes=[{"type": "line", "x0": 1, "x1": 1, "yref": "paper", "y0": 0, "y1": 1,
                            "line": {"dash": "dot", "color": "#888"}}])  # fmt: skip


def heatmap(summary: dict[str, Any]) -> Figure:
    exe = summary["headline_executable"]
    aliases = [t["alias"] for t in summary["instance_types"]]
    rows = [r for r in summary["benchmarks"] if r["executable"] == exe and r["speedup"]]
    names = sorted({r["name"] for r in rows})
    cell = {(r["name"], r["alias"]): r["speedup"]["estimate"] for r in rows}
    z = [[math.log2(cell[(n, a)]) if (n, a) in cell else None for a in aliases] for n in names]
    text = [[f"{cell[(n, a)]:.2f}" if (n, a) in cell else "" for a in aliases] for n in names]
    trace = {"type": "heatmap", "x": aliases, "y": names, "z": z, "text": text,
             "zmid": 0, "colorscale": "RdBu", "colorbar": {"title": {"text": "log2 speedup"}},
             "hovertemplate": "%{y} on %{x}: %{text}x<extra></extra>"}  # fmt: skip
    return _figure("heatmap", f"Speedup per benchmark vs {summary['baseline']} ({exe})", [trace],
                   height=160 + 18 * len(names), yaxis={"automargin": True},
                   xaxis={"automargin": True})  # fmt: skip


def _bars(types: list[dict[str, Any]]) -> dict[str, Any]:
    """Vertical 95% interval bars of the geomean speedup (none for the reference)."""
    speeds = [t["geomean_speedup"] for t in types]
    return {"type": "data", "symmetric": False,
            "array": [s["ci_high"] - s["estimate"] if s["ci_high"] is not None else 0
                      for s in speeds],
            "arrayminus": [s["estimate"] - s["ci_low"] if s["ci_low"] is not None else 0
                           for s in speeds]}  # fmt: skip


def pareto(summary: dict[str, Any]) -> Figure | None:
    types = [t for t in summary["instance_types"]
             if t["usd_per_hour"] is not None and t["geomean_speedup"]]  # fmt: skip
    if not types:
        return None
    front = sorted((t for t in types if t["pareto"]), key=lambda t: t["usd_per_hour"])
    points = {"type": "scatter", "mode": "markers+text", "name": "instance types",
              "x": [t["usd_per_hour"] for t in types],
              "y": [t["geomean_speedup"]["estimate"] for t in types],
              "text": [t["alias"] for t in types], "textposition": "top center",
              "error_y": _bars(types)}  # fmt: skip
    line = {
        "type": "scatter",
        "mode": "lines",
        "name": "Pareto frontier",
        "x": [t["usd_per_hour"] for t in front],
        "y": [t["geomean_speedup"]["estimate"] for t in front],
        "line": {"shape": "hv"},
    }
    return _figure("pareto", "Speed against price (up and left is better)", [points, line],
                   xaxis={"title": {"text": "USD per hour"}},
                   yaxis={"title": {"text": "geomean speedup"}}, height=420)  # fmt: skip


def strips(results: ResultSet, summary: dict[str, Any]) -> list[Figure]:
    """Per benchmark: every task's value, one column per alias, coloured by machine."""
    exe = summary["headline_executable"]
    machines = sorted({t.machine for t in results.tasks})
    colour = {m: i for i, m in enumerate(machines)}
    names = sorted({r["name"] for r in summary["benchmarks"] if r["executable"] == exe})
    figures = []
    for i, name in enumerate(names):
        xs, ys, cs, hover = [], [], [], []
        for task in results.tasks:
            result = task.results.get(exe, {}).get(name)
            if result is not None:
                xs.append(task.alias)
                ys.append(result.median)
                cs.append(colour[task.machine])
                hover.append(f"task {task.task_id} on {task.machine}")
        trace = {"type": "scatter", "mode": "markers", "x": xs, "y": ys, "text": hover,
                 "marker": {"color": cs, "colorscale": "Turbo", "size": 8, "opacity": 0.8},
                 "hovertemplate": "%{text}: %{y:.4g} s<extra></extra>"}  # fmt: skip
        figures.append(_figure(f"strip-{i}", f"{name} ({exe}): per-task median, s", [trace],
                               height=320, xaxis={"automargin": True}))  # fmt: skip
    return figures


def _curve(results: ResultSet, alias: str, exe: str, name: str) -> dict[str, Any] | None:
    runs = [r for t in results.tasks if t.alias == alias
            and (r := t.results.get(exe, {}).get(name)) is not None]  # fmt: skip
    if not runs:
        return None
    warm = min(r.warmup.size for r in runs)
    bench = min(r.bench.size for r in runs)
    curves = [np.concatenate([r.warmup[-warm:] if warm else r.warmup[:0], r.bench[:bench]])
              / r.median for r in runs]  # fmt: skip
    median = np.median(np.vstack(curves), axis=0)
    return {"type": "scatter", "mode": "lines+markers", "name": alias,
            "x": list(range(1 - warm, bench + 1)), "y": median.tolist()}  # fmt: skip


def warmups(results: ResultSet, summary: dict[str, Any]) -> list[Figure]:
    """Per benchmark: median over tasks of each iteration's time ÷ the task's bench median.

    Iterations <= 0 are warm-up; a flat line from 1 on means the settings were long enough.
    """
    exe = summary["headline_executable"]
    names = sorted({r["name"] for r in summary["benchmarks"] if r["executable"] == exe})
    aliases = [summary["baseline"], *[a for a in results.aliases if a != summary["baseline"]]]
    figures = []
    for i, name in enumerate(names):
        traces = [c for a in aliases[:12] if (c := _curve(results, a, exe, name))]
        figures.append(_figure(f"warmup-{i}", f"{name} ({exe}): iteration time ÷ task median",
                               traces, height=300, showlegend=len(traces) > 1,
                               xaxis={"title": {"text": "iteration (<= 0: warm-up)"}},
                               shapes=[{"type": "line", "x0": 0.5, "x1": 0.5, "yref": "paper",
                                        "y0": 0, "y1": 1, "line": {"dash": "dot"}}]))  # fmt: skip
    return figures

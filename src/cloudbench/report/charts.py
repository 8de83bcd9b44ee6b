"""Plotly figure specs (plain dicts) for the HTML page; plotly.js is inlined there."""

from __future__ import annotations

from typing import Any

import numpy as np

from cloudbench.report.merge import ResultSet

Figure = dict[str, Any]
_LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "autosize": True,
    "font": {"family": "system-ui, sans-serif", "size": 12},
}


def _figure(fid: str, title: str, data: list[dict[str, Any]], **layout: Any) -> Figure:
    return {
        "id": fid,
        "title": title,
        "data": data,
        "layout": {**_LAYOUT, "title": {"text": title}, **layout},
    }


def forest(summary: dict[str, Any]) -> Figure:
    types = [t for t in summary["instance_types"] if t["geomean_speedup"]]
    est = [t["geomean_speedup"]["estimate"] for t in types]
    low = [t["geomean_speedup"]["ci_low"] for t in types]
    high = [t["geomean_speedup"]["ci_high"] for t in types]
    trace = {
        "type": "scatter",
        "mode": "markers",
        "x": est,
        "y": [t["alias"] for t in types],
        "error_x": {
            "type": "data",
            "symmetric": False,
            "array": [h - e if h is not None else 0 for h, e in zip(high, est, strict=True)],
            "arrayminus": [e - lo if lo is not None else 0 for lo, e in zip(low, est, strict=True)],
        },
        "hovertemplate": "%{y}: %{x:.3f}x<extra></extra>",
    }
    height = 120 + 22 * len(types)
    ends = [v for v in [*est, *low, *high] if v is not None and v > 0]
    return _figure(
        "forest",
        f"Geomean speedup vs {summary['baseline']} ({summary['headline_executable']}), 95% CI",
        [trace],
        height=height,
        xaxis={
            "type": "log",
            "title": {"text": "speedup, x the baseline (log scale)"},
            **log_ticks(min(ends, default=1.0), max(ends, default=1.0)),
        },
        yaxis={"autorange": "reversed", "automargin": True},
        shapes=[
            {
                "type": "line",
                "x0": 1,
                "x1": 1,
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "line": {"dash": "dot", "color": "#888"},
            }
        ],
    )


NICE = (
    0.1,
    0.2,
    0.25,
    0.33,
    0.5,
    0.67,
    0.75,
    0.8,
    0.9,
    0.95,
    1,
    1.05,
    1.1,
    1.25,
    1.5,
    2,
    3,
    4,
    5,
    10,
)


def log_ticks(low: float, high: float) -> dict[str, Any]:
    """Tick values and labels for a log axis spanning [low, high]: a few round ratios
    ("0.8x", "1x", "1.25x"), never plotly's bare mantissas ("6 7 8 9 1 2 3")."""
    low, high = min(low, 1.0), max(high, 1.0)
    inside = [v for v in NICE if low / 1.05 <= v <= high * 1.05]
    while len(inside) > 7:
        inside = [v for i, v in enumerate(inside) if i % 2 == 0 or v == 1]
    return {"tickvals": inside, "ticktext": [f"{v:g}x" for v in inside]}


def _bars(types: list[dict[str, Any]]) -> dict[str, Any]:
    """Vertical 95% interval bars of the geomean speedup (none for the reference)."""
    speeds = [t["geomean_speedup"] for t in types]
    return {
        "type": "data",
        "symmetric": False,
        "array": [s["ci_high"] - s["estimate"] if s["ci_high"] is not None else 0 for s in speeds],
        "arrayminus": [
            s["estimate"] - s["ci_low"] if s["ci_low"] is not None else 0 for s in speeds
        ],
    }


def pareto(summary: dict[str, Any]) -> Figure | None:
    types = [
        t
        for t in summary["instance_types"]
        if t["usd_per_hour"] is not None and t["geomean_speedup"]
    ]
    if not types:
        return None
    front = sorted((t for t in types if t["pareto"]), key=lambda t: t["usd_per_hour"])
    points = {
        "type": "scatter",
        "mode": "markers+text",
        "name": "instance types",
        "x": [t["usd_per_hour"] for t in types],
        "y": [t["geomean_speedup"]["estimate"] for t in types],
        "text": [t["alias"] for t in types],
        "textposition": "top center",
        "error_y": _bars(types),
    }
    line = {
        "type": "scatter",
        "mode": "lines",
        "name": "Pareto frontier",
        "x": [t["usd_per_hour"] for t in front],
        "y": [t["geomean_speedup"]["estimate"] for t in front],
        "line": {"shape": "hv"},
    }
    return _figure(
        "pareto",
        "Speed against price (up and left is better)",
        [points, line],
        xaxis={"title": {"text": "USD per hour"}},
        yaxis={"title": {"text": "geomean speedup"}},
        height=420,
    )


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
                ys.append(result.median * 1000)
                cs.append(colour[task.machine])
                hover.append(f"task {task.task_id} on {task.machine}")
        trace = {
            "type": "scatter",
            "mode": "markers",
            "x": xs,
            "y": ys,
            "text": hover,
            "marker": {"color": cs, "colorscale": "Turbo", "size": 8, "opacity": 0.8},
            "hovertemplate": "%{text}: %{y:.4g} ms<extra></extra>",
        }
        figures.append(
            _figure(
                f"strip-{i}",
                f"{name} ({exe}): each task's median",
                [trace],
                height=320,
                xaxis={"automargin": True},
                yaxis={"title": {"text": "ms per iteration"}},
            )
        )
    return figures


COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _curves(results: ResultSet, alias: str, exe: str, name: str, colour: str) -> list[Figure]:
    """One line per task: its warm-up then measured iterations, in ms."""
    traces = []
    for n, task in enumerate(t for t in results.tasks if t.alias == alias):
        r = task.results.get(exe, {}).get(name)
        if r is None:
            continue
        times = np.concatenate([r.warmup, r.bench]) * 1000
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": alias,
                "legendgroup": alias,
                "showlegend": n == 0,
                "x": list(range(1 - r.warmup.size, r.bench.size + 1)),
                "y": times.tolist(),
                "line": {"color": colour, "width": 1},
                "marker": {"size": 4},
                "text": f"task {task.task_id}",
                "hovertemplate": f"{alias} task {task.task_id}: "
                "%{y:.4g} ms (iteration %{x})<extra></extra>",
            }
        )
    return traces


def warmups(results: ResultSet, summary: dict[str, Any]) -> list[Figure]:
    """Per benchmark: each task's iteration times in ms, warm-up (iterations <= 0) then
    measured; a flat line after 0 means the settings were long enough."""
    exe = summary["headline_executable"]
    names = sorted({r["name"] for r in summary["benchmarks"] if r["executable"] == exe})
    aliases = [summary["baseline"], *[a for a in results.aliases if a != summary["baseline"]]]
    figures = []
    for i, name in enumerate(names):
        traces = [
            c
            for k, a in enumerate(aliases[:10])
            for c in _curves(results, a, exe, name, COLOURS[k])
        ]
        figures.append(
            _figure(
                f"warmup-{i}",
                f"{name} ({exe}): time per iteration",
                traces,
                height=320,
                showlegend=True,
                legend={"title": {"text": "type (a line per task)"}},
                xaxis={"title": {"text": "iteration (<= 0: warm-up)"}},
                yaxis={"title": {"text": "ms per iteration"}},
                shapes=[
                    {
                        "type": "line",
                        "x0": 0.5,
                        "x1": 0.5,
                        "yref": "paper",
                        "y0": 0,
                        "y1": 1,
                        "line": {"dash": "dot"},
                    }
                ],
            )
        )
    return figures

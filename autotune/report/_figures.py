"""The report's plotly figures, as JSON the page draws: the history, the parallel
coordinates in human units, the importance bars and the verdict's rounds."""

from __future__ import annotations

from typing import Any


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _ok_trials(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The search's successful full-length trials (the verification's runs are its own)."""
    return [
        t
        for t in data["trials"]
        if t["status"] == "ok"
        and t.get("objective") is not None
        and t.get("full", True)
        and t.get("phase", "search") == "search"
    ]


def _label(t: dict[str, Any]) -> str:
    marks = [m for m, on in (("baseline", t.get("baseline")), ("repeat", t.get("repeat"))) if on]
    return f"trial {t['number']}" + (f" ({', '.join(marks)})" if marks else "")


def history_figure(data: dict[str, Any]) -> dict[str, Any] | None:
    """Each finished ok full-length trial's objective, the best so far, and the baseline."""
    points = sorted(_ok_trials(data), key=lambda t: t["number"])
    if not points:
        return None
    maximize = data["objective"]["direction"] == "maximize"
    xs = [t["number"] for t in points]
    ys = [float(t["objective"]) for t in points]
    best: list[float] = []
    for y in ys:
        best.append(y if not best else (max if maximize else min)(best[-1], y))
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": "trials",
            "x": xs,
            "y": ys,
            "text": [_label(t) for t in points],
            "hovertemplate": "%{text}<br>%{y}<extra></extra>",
            "marker": {"size": 9},
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "best so far",
            "x": xs,
            "y": best,
            "line": {"shape": "hv"},
            "hoverinfo": "skip",
        },
    ]
    if data.get("baseline") is not None:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "baseline",
                "x": [min(xs), max(xs)],
                "y": [data["baseline"], data["baseline"]],
                "line": {"dash": "dash", "color": "grey"},
                "hoverinfo": "skip",
            }
        )
    metric = data["objective"]["metric"]
    return {
        "data": traces,
        "layout": {
            "title": {"text": f"{metric} by trial ({data['objective']['direction']})"},
            "xaxis": {"title": {"text": "trial"}},
            "yaxis": {"title": {"text": metric}},
            "margin": {"t": 50},
        },
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dimension(name: str, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """A parcoords axis in the knob's own units: ticks at values the trials ran with,
    labelled as the system writes them (128MB, 5min), not in native units (pages)."""
    values = [t["config"][name] for t in trials]
    text: dict[float, str] = {}
    for t in trials:
        shown = (t.get("config_text") or {}).get(name)
        if shown is not None:
            text[float(t["config"][name])] = str(shown)
    dim: dict[str, Any] = {"label": name, "values": values}
    if text:
        ticks = sorted(text)
        if len(ticks) > 6:  # at most six: the ends and four between, by position
            ticks = [ticks[round(i * (len(ticks) - 1) / 5)] for i in range(6)]
        dim["tickvals"] = ticks
        dim["ticktext"] = [text[v] for v in ticks]
    return dim


def parallel_figure(data: dict[str, Any]) -> dict[str, Any] | None:
    """The numeric knobs against the objective, one line per ok trial."""
    ok = [t for t in data["trials"] if t["status"] == "ok" and t.get("objective") is not None]
    if not ok:
        return None
    names = list(data.get("knobs") or [])
    for t in ok:
        names += [k for k in t["config"] if k not in names]
    dims = [
        _dimension(name, ok) for name in names if all(_is_number(t["config"].get(name)) for t in ok)
    ]
    metric = data["objective"]["metric"]
    objective = [float(t["objective"]) for t in ok]
    dims.append({"label": metric, "values": objective})
    return {
        "data": [
            {
                "type": "parcoords",
                "line": {
                    "color": objective,
                    "colorscale": "Viridis",
                    "reversescale": data["objective"]["direction"] != "maximize",
                    "showscale": True,
                },
                "dimensions": dims,
            }
        ],
        "layout": {
            "title": {"text": f"knobs against {metric}"},
            "margin": {"t": 80, "l": 60, "r": 60},
        },
    }


def importance_figure(data: dict[str, Any]) -> dict[str, Any] | None:
    """The combined knob ranking as bars whose length is importance: n + 1 minus the
    knob's mean rank over the two methods, so the top knob's bar is the longest."""
    ranking = data.get("importance")
    if not ranking:
        return None
    ranked = [r for r in ranking if _is_number(r.get("score"))]
    if not ranked:
        return None
    n = len(ranked)
    ordered = sorted(ranked, key=lambda r: (r.get("rank") or 0, float(r["score"])))
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": "importance",
                "y": [r["name"] for r in ordered],
                "x": [n + 1 - float(r["score"]) for r in ordered],
                "customdata": [r["score"] for r in ordered],
                "hovertemplate": "%{y}: mean rank %{customdata}<extra></extra>",
            }
        ],
        "layout": {
            "title": {"text": "knob importance (combined Lasso and forest ranking)"},
            "xaxis": {"title": {"text": "importance: n + 1 − mean rank (longer is more)"}},
            "yaxis": {"autorange": "reversed", "automargin": True},
            "margin": {"t": 50},
            "height": max(300, 28 * n + 120),
        },
    }


def verdict_figure(data: dict[str, Any]) -> dict[str, Any] | None:
    """Each arm's paired ratio to the default with its 95% CI, and its runs divided by
    the default's median; the dashed line is the default (1)."""
    verdict = data.get("verdict")
    if not verdict:
        return None
    arms = [a for a in verdict.get("arms") or [] if isinstance(a, dict)]
    default = next((a for a in arms if a.get("label") == "default"), None)
    base = default.get("median") if default else None
    maximize = data["objective"]["direction"] == "maximize"
    traces: list[dict[str, Any]] = []
    labels: list[str] = []
    ratios: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    colours: list[str] = []
    for arm in arms:
        ratio: Any = arm.get("ratio")
        ci: Any = arm.get("ci")
        if not _is_number(ratio) or not ci or not all(_is_number(c) for c in ci):
            continue
        lo, hi = float(ci[0]), float(ci[1])
        labels.append(str(arm["label"]))
        ratios.append(float(ratio))
        lows.append(float(ratio) - lo)
        highs.append(hi - float(ratio))
        colours.append("#1a7f37" if lo > 1 else "#cf222e" if hi < 1 else "#6e7781")
    if not labels:
        return None
    if _is_number(base) and base:
        for arm in arms:
            values = [v for v in arm.get("values") or [] if _is_number(v) and v > 0]
            if not values:
                continue
            rel = [(v / base) if maximize else (base / v) for v in values]
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{arm['label']}: runs ÷ default's median",
                    "x": rel,
                    "y": [str(arm["label"])] * len(rel),
                    "marker": {"size": 6, "opacity": 0.45, "color": "#57606a"},
                    "hovertemplate": "%{x:.3f}<extra>a run ÷ the default's median</extra>",
                    "showlegend": False,
                }
            )
    traces.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": "paired ratio, 95% CI",
            "x": ratios,
            "y": labels,
            "error_x": {"type": "data", "symmetric": False, "array": highs, "arrayminus": lows},
            "marker": {"size": 12, "color": colours},
            "hovertemplate": "%{y}: %{x:.3f}× the default<extra>paired, 95% CI</extra>",
        }
    )
    return {
        "data": traces,
        "layout": {
            "title": {"text": "each arm against the default, paired by round (> 1 is better)"},
            "xaxis": {"title": {"text": "× the default"}},
            "yaxis": {"autorange": "reversed", "automargin": True},
            "shapes": [
                {
                    "type": "line", "x0": 1, "x1": 1, "yref": "paper", "y0": 0, "y1": 1,
                    "line": {"dash": "dash", "color": "#888"},
                }
            ],
            "margin": {"t": 50},
            "height": max(260, 70 * len(labels) + 120),
        },
    }  # fmt: skip


def figures(data: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    return {
        "verdict": verdict_figure(data),
        "history": history_figure(data),
        "parallel": parallel_figure(data),
        "importance": importance_figure(data),
    }

"""An experiment's report as one HTML page: charts (plotly), trials, failures, best config.

Self-contained when plotly.js is inlined: no network, no server; the downloads are
made in the browser from the embedded data. Every text from the store is escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

FIGURES_ID = "figures"


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script>``: no ``<``, ``>`` or ``&`` (so no ``</script>``)."""
    text = json.dumps(value, allow_nan=False, sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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


def _status(t: dict[str, Any]) -> str:
    marks = [t["status"]]
    if t.get("baseline"):
        marks.append("baseline")
    if t.get("repeat"):
        marks.append("repeat")
    if t.get("phase") == "verify":
        marks.append(f"verify round {t.get('round')}: {t.get('arm')}")
    if not t.get("full", True):
        marks.append(f"{t.get('fidelity', 0):.2g}×")
    return ", ".join(marks)


def _config_cell(t: dict[str, Any]) -> str:
    values = t.get("config_text") or t.get("config") or {}
    return " ".join(f"{k}={v}" for k, v in values.items())


def _metrics_cell(t: dict[str, Any]) -> str:
    return " ".join(f"{k}={_num(v)}" for k, v in (t.get("metrics") or {}).items())


def _trials_table(data: dict[str, Any]) -> str:
    rows = []
    for t in data["trials"]:
        duration = t.get("total_s")
        rows.append(
            f'<tr data-number="{int(t["number"])}" data-status="{escape(str(t["status"]))}">'
            f"<td>{int(t['number'])}</td>"
            f"<td>{escape(_status(t))}</td>"
            f'<td class="num">{escape(_num(t.get("objective")))}</td>'
            f"<td>{escape(t.get('agent') or '-')}</td>"
            f'<td class="num">{escape("-" if duration is None else f"{duration:.1f} s")}</td>'
            f"<td><code>{escape(_metrics_cell(t))}</code></td>"
            f"<td><code>{escape(_config_cell(t))}</code></td>"
            "</tr>"
        )
    metric = escape(data["objective"]["metric"])
    return (
        '<table id="trials"><thead><tr><th>#</th><th>status</th>'
        f"<th>{metric}</th><th>agent</th><th>duration</th><th>metrics</th><th>config</th>"
        "</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _failures(data: dict[str, Any]) -> str:
    failed = [t for t in data["trials"] if t["status"] == "failed"]
    parts = ['<section id="failures"><h2>Failures</h2>']
    if not failed:
        parts.append('<p class="note">No failed trials.</p>')
    for t in failed:
        parts.append(
            f'<article class="failure" data-number="{int(t["number"])}">'
            f"<h3>Trial {int(t['number'])}</h3>"
            f'<pre class="error">{escape(t.get("error") or "(no error recorded)")}</pre>'
        )
        if t.get("log_excerpt"):
            parts.append(f'<pre class="log">{escape(t["log_excerpt"])}</pre>')
        parts.append("</article>")
    parts.append("</section>")
    return "".join(parts)


def _best(data: dict[str, Any]) -> str:
    best = data.get("best")
    conf = (best or {}).get("conf") or ""
    if best is None:
        note = '<p class="note">No successful full-length trial yet.</p>'
    else:
        lines = [best.get("summary") or ""]
        if best.get("unstable"):
            lines.append(best["unstable"])
        verdict = data.get("verdict")
        if verdict and not verdict.get("verified"):
            # The search's own claim is not the answer: the verdict above is.
            lines.insert(
                0,
                "Not recommended: the verification above found no verified gain, so keep "
                "the default. Below is the search's candidate and its unverified claim.",
            )
        note = "".join(f'<p class="summary">{escape(line)}</p>' for line in lines if line)
    disabled = "" if conf else " disabled"
    buttons = [f'<button type="button" id="copy-config"{disabled}>Copy</button>']
    why = (best or {}).get("unavailable") or {}
    for fmt in ("conf", "sql", "json"):
        off = "" if best and best.get(fmt) else " disabled"
        title = f' title="{escape(why[fmt])}"' if fmt in why else ""
        buttons.append(
            f'<button type="button" id="download-{fmt}" data-format="{fmt}"{off}{title}>'
            f"Download .{fmt}</button>"
        )
    missing = "".join(
        f'<p class="summary unavailable">No .{escape(fmt)}: {escape(reason)}</p>'
        for fmt, reason in why.items()
    )
    return (
        '<section id="best"><h2>Best config</h2>'
        f"{note}"
        f'<div class="buttons">{"".join(buttons)}<span id="copy-status"></span></div>{missing}'
        f'<pre id="best-config" data-format="conf">{escape(conf)}</pre>'
        "</section>"
    )


def _verdict(data: dict[str, Any], fig: dict[str, Any] | None) -> str:
    """The answer first: did the best hold up in paired rounds against the default?"""
    verdict = data.get("verdict")
    if not verdict:
        best = data.get("best")
        how = (
            f"The best below is the search's ({best['summary']})."
            if best and best.get("summary")
            else "No successful trial yet."
        )
        return (
            '<section id="verdict"><h2>Verdict</h2>'
            f'<p class="verdict unverified">Not verified. {escape(how)} A session of 10 '
            "trials or more ends by verifying it against the default in paired rounds; "
            f"autotune verify {escape(data['name'])} does it later.</p></section>"
        )
    words = str(verdict.get("verdict") or "")
    kind = "verified" if verdict.get("verified") else "unverified"
    rows = []
    for arm in verdict.get("arms") or []:
        ci = arm.get("ci")
        ratio = arm.get("ratio")
        cells = [
            str(arm.get("label")) + (" (best)" if arm.get("label") == verdict.get("best") else ""),
            _num(arm.get("runs")),
            _num(arm.get("median")),
            "1" if arm.get("label") == "default" else _num(ratio),
            "" if not ci else f"{ci[0]:.3f}–{ci[1]:.3f}",
            _arm_word(arm),
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    table = (
        '<table id="verdict-arms"><thead><tr><th>arm</th><th>runs</th><th>median</th>'
        "<th>× default</th><th>95% CI (paired)</th><th>verdict</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    raw = json.dumps(
        {"verdict": verdict, "autotune verify": data.get("verify")}, indent=2, allow_nan=False
    )
    return (
        '<section id="verdict"><h2>Verdict</h2>'
        f'<p class="verdict {kind}">{escape(words[:1].upper() + words[1:])}</p>'
        f'<p class="note">From {escape(str(verdict.get("source")))}: '
        f"{escape(_num(verdict.get('rounds')))} rounds, each arm run in every round in rotating "
        "order; a ratio is the geometric mean of its per-round ratios to the default.</p>"
        + _chart("verdict-chart", fig, "")
        + table
        + f"<details><summary>raw verification JSON</summary><pre>{escape(raw)}</pre>"
        "</details></section>"
    )


def _arm_word(arm: dict[str, Any]) -> str:
    ci = arm.get("ci")
    if arm.get("label") == "default":
        return "reference"
    if not ci:
        return "no comparison"
    return "better" if ci[0] > 1 else "worse" if ci[1] < 1 else "not significant"


def _header(data: dict[str, Any]) -> str:
    objective = data["objective"]
    trials = data["trials"]
    failed = sum(1 for t in trials if t["status"] == "failed")
    facts = [
        ("system", data.get("system")),
        ("workload", data.get("workload")),
        ("objective", f"{objective['metric']} ({objective['direction']})"),
        ("baseline", _num(data.get("baseline"))),
        ("trials", f"{len(trials)} ({failed} failed)"),
        ("status", data.get("status")),
    ]
    items = "".join(
        f"<dt>{escape(k)}</dt><dd>{escape(str(v if v is not None else '-'))}</dd>" for k, v in facts
    )
    return f"<header><h1>{escape(data['name'])}</h1><dl>{items}</dl></header>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
header dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
header dt { font-weight: 600; }
header dd { margin: 0; }
.chart { min-height: 420px; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr[data-status="failed"] { background: #fff0f0; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; white-space: pre-wrap; }
pre.error { background: #fff0f0; }
.note { color: #666; font-style: italic; }
.buttons { display: flex; gap: .5rem; align-items: center; margin: .5rem 0; }
.verdict { font-size: 1.25rem; font-weight: 600; padding: .6rem .8rem; border-radius: 6px; }
.verdict.verified { background: #dafbe1; }
.verdict.unverified { background: #fff8c5; }
"""

_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("experiment-data").textContent);
  var figs = JSON.parse(document.getElementById("figures").textContent);
  var config = {
    responsive: true, displaylogo: false, showLink: false, showSendToCloud: false,
    showEditInChartStudio: false
  };
  var divs = { verdict: "verdict-chart" };
  ["verdict", "history", "parallel", "importance"].forEach(function (id) {
    var fig = figs[id];
    var div = document.getElementById(divs[id] || id);
    if (!fig || !div) { return; }
    if (window.Plotly) {
      Plotly.newPlot(div, fig.data, fig.layout, config);
    } else {
      div.textContent = "plotly.js is not loaded: no chart.";
    }
  });
  var status = document.getElementById("copy-status");
  var pre = document.getElementById("best-config");
  function say(text) { if (status) { status.textContent = text; } }
  function copyFallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); say("copied"); } catch (e) { say("copy failed"); }
    area.remove();
  }
  var copy = document.getElementById("copy-config");
  if (copy) {
    copy.addEventListener("click", function () {
      var text = pre.textContent;
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(
          function () { say("copied"); },
          function () { copyFallback(text); }
        );
      } else {
        copyFallback(text);
      }
    });
  }
  var types = { conf: "text/plain", sql: "application/sql", json: "application/json" };
  var stem = String(data.name).replace(/[^A-Za-z0-9._-]/g, "_") + "-best";
  ["conf", "sql", "json"].forEach(function (fmt) {
    var button = document.getElementById("download-" + fmt);
    if (!button) { return; }
    button.addEventListener("click", function () {
      var text = data.best && data.best[fmt];
      if (!text) { return; }
      var blob = new Blob([text + "\\n"], { type: types[fmt] });
      var url = URL.createObjectURL(blob);
      var link = document.createElement("a");
      link.href = url;
      link.download = stem + "." + fmt;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    });
  });
})();
"""


def _chart(div_id: str, fig: dict[str, Any] | None, empty: str) -> str:
    if fig is None:
        return f'<div id="{div_id}" class="chart-empty"><p class="note">{escape(empty)}</p></div>'
    return f'<div id="{div_id}" class="chart"></div>'


def render_experiment_html(
    data: dict[str, Any],
    *,
    plotly_js: str | None,
    plotly_src: str | None = None,
    refresh_s: int | None = None,
) -> str:
    """A full HTML page for ``data`` (see experiment_data).

    ``plotly_js`` is inlined in a ``<script>``; else ``plotly_src`` is loaded with
    ``<script src>``; with neither the page has no charts. ``refresh_s`` reloads it.
    """
    figs = figures(data)
    head = ['<meta charset="utf-8">', '<meta name="viewport" content="width=device-width">']
    if refresh_s is not None:
        head.append(f'<meta http-equiv="refresh" content="{int(refresh_s)}">')
    head.append(f"<title>autotune: {escape(data['name'])}</title>")
    head.append(f"<style>{_STYLE}</style>")
    if plotly_js is not None:
        safe_js = plotly_js.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")
        head.append(f'<script type="text/javascript">{safe_js}</script>')
    elif plotly_src is not None:
        head.append(f'<script type="text/javascript" src="{escape(plotly_src)}"></script>')
    name = data["name"]
    importance_note = (
        f"No knob analysis stored yet; run: autotune analyze {name}"
        if not data.get("importance")
        else ""
    )
    body = [
        _header(data),
        _verdict(data, figs["verdict"]),
        '<section id="charts"><h2>Progress</h2>',
        _chart("history", figs["history"], "No successful full-length trial yet."),
        _chart("parallel", figs["parallel"], "No successful trial yet."),
        "<h2>Knob importance</h2>",
        _chart("importance", figs["importance"], importance_note),
        "</section>",
        _best(data),
        '<section id="trials-section"><h2>Trials</h2>',
        _trials_table(data),
        "</section>",
        _failures(data),
        f'<script type="application/json" id="experiment-data">{script_json(data)}</script>',
        f'<script type="application/json" id="{FIGURES_ID}">{script_json(figs)}</script>',
        f"<script>{_SCRIPT}</script>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
        + "\n".join(head)
        + "\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )

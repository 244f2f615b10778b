"""An experiment's report as one HTML page: charts (plotly), trials, failures, best config.

Self-contained when plotly.js is inlined: no network, no server; the downloads are
made in the browser from the embedded data. Every text from the store is escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from autotune.report._figures import _num, figures

FIGURES_ID = "figures"


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script>``: no ``<``, ``>`` or ``&`` (so no ``</script>``)."""
    text = json.dumps(value, allow_nan=False, sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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

"""An experiment's report: one self-contained HTML page, viewable offline."""

from __future__ import annotations

from pathlib import Path

from autotune.report._data import experiment_data
from autotune.report._figures import figures
from autotune.report._html import render_experiment_html, script_json
from autotune.store import Store


def plotly_js() -> str:
    """plotly.js itself, to inline: the page then needs no network."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def write_report(store: Store, name: str, out: Path) -> Path:
    """Write experiment ``name``'s report to ``out``; returns ``out``."""
    experiment = store.require_experiment(name)
    html = render_experiment_html(experiment_data(store, experiment), plotly_js=plotly_js())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


__all__ = [
    "experiment_data",
    "figures",
    "plotly_js",
    "render_experiment_html",
    "script_json",
    "write_report",
]

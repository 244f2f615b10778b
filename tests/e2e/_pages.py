"""What the report and dashboard pages must show, shared by the e2e tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autotune.cli._format import recorded_spec, render
from autotune.store import Store, import_experiment, read_export
from autotune.tuner import summarize

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "experiments" / "recorded" / "pgbench-tpcb-oltp20.json"

# Plotly has drawn #history (its svg and points) and #parallel (its parcoords).
DRAWN = """() => {
  const h = document.getElementById('history');
  const p = document.getElementById('parallel');
  return !!(h && h._fullLayout && h.querySelector('svg.main-svg')
            && h.querySelector('.scatterlayer .point')
            && p && p._fullLayout && p.querySelector('.parcoords'));
}"""

FACTS = """() => {
  const h = document.getElementById('history');
  const p = document.getElementById('parallel');
  const trials = (h.data || []).find(t => t.name === 'trials');
  const pre = document.getElementById('best-config');
  return {
    hasData: Array.isArray(h.data),
    traceNames: (h.data || []).map(t => t.name),
    trialsPoints: trials ? trials.y.length : null,
    historySvg: h.querySelectorAll('svg.main-svg').length,
    historyPoints: h.querySelectorAll('.scatterlayer .point').length,
    parcoordsEl: p.querySelectorAll('.parcoords').length,
    parallelType: p.data && p.data[0] ? p.data[0].type : null,
    rows: document.querySelectorAll('#trials tr[data-number]').length,
    bestConfig: pre ? pre.textContent : null,
    bestFormat: pre ? pre.dataset.format : null,
  };
}"""


@dataclass
class Expected:
    name: str
    ok_full: int  # finished ok full-fidelity trials with an objective: the "trials" trace
    rows: int  # every trial in the store: the table
    best_conf: str


def load_recorded(tmp_path: Path) -> tuple[Store, Expected]:
    """The recorded experiment in a new SQLite store, and what its pages must show."""
    store = Store(f"sqlite:///{tmp_path / 'autotune.db'}")
    experiment = import_experiment(store, read_export(RECORDED))
    finished = store.trials(experiment, finished_only=True)
    best = summarize(store, experiment).best
    assert best is not None
    expected = Expected(
        name=experiment.name,
        ok_full=sum(1 for t in finished if t.ok and t.full and t.objective is not None),
        rows=len(store.trials(experiment)),
        best_conf=render(recorded_spec(experiment), best.config, "conf"),
    )
    return store, expected

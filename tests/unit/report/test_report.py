"""`autotune report`: one self-contained HTML page per experiment."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from autotune.cli import report as report_cli
from autotune.cli._format import recorded_spec, render
from autotune.report import experiment_data, render_experiment_html, write_report
from autotune.spec import Machine
from autotune.store import Experiment, Store, Trial, import_experiment, read_export
from tests.unit._support import MACHINE, ROOT

runner = CliRunner()
LOG = "FATAL: bad value </pre><script>alert('x')</script> & more"
FAKE_PLOTLY = "/* plotly.js stand-in */ window.Plotly = {newPlot: function () {}};"


@pytest.fixture(autouse=True)
def fixed_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: MACHINE))


@pytest.fixture
def filled(
    store: Store,
    make_experiment: Callable[..., Experiment],
    make_trial: Callable[..., Trial],
) -> Experiment:
    exp = make_experiment("bench", settings={"knobs": ["mem", "ratio", "mode"], "duration_s": 1.0})
    base = {"mem": 4096, "ratio": 0.5, "mode": "a"}
    better = {"mem": 65536, "ratio": 0.25, "mode": "b"}
    timings = {"measure_s": 2.0, "total_s": 3.0}
    store.add_trial(exp, make_trial(1, 100.0, baseline=True, config=base, timings=timings))
    store.add_trial(exp, make_trial(2, 150.0, config=better, agent="agent-1", timings=timings))
    store.add_trial(
        exp,
        make_trial(
            3,
            None,
            "failed",
            config={"mem": 64, "ratio": 0.9, "mode": "c"},
            error="server did not start <oops>",
            log_excerpt=LOG,
        ),
    )
    store.add_trial(exp, make_trial(4, 120.0, config={"mem": 1024, "ratio": 0.7, "mode": "a"}))
    store.add_trial(exp, make_trial(5, 140.0, config=better, repeat=True))
    store.add_trial(exp, make_trial(6, 90.0, config=base, fidelity=0.25))  # short run
    store.add_analysis(
        exp,
        "analyze",
        {
            "combined": [
                {"name": "mem", "rank": 1, "score": 1.0},  # score: the mean rank
                {"name": "mode", "rank": 2, "score": 2.0},
            ]
        },
    )
    return exp


def embedded(html: str, element_id: str) -> Any:
    match = re.search(
        rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S
    )
    assert match, element_id
    return json.loads(match.group(1))


def external_sources(html: str) -> list[str]:
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html, re.I)
    return [t for t in tags if re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", t, re.I)]


class Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.rows: list[str] = []
        self.pre: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "tr" and a.get("data-number"):
            self.rows.append(str(a["data-number"]))
        if tag == "pre" and a.get("id"):
            self._in = str(a["id"])
            self.pre[self._in] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.pre[self._in] += data


def parse(html: str) -> Ids:
    p = Ids()
    p.feed(html)
    return p


def test_data_has_every_trial_best_and_importance(store: Store, filled: Experiment) -> None:
    data = experiment_data(store, filled)
    json.dumps(data, allow_nan=False)
    assert data["name"] == "bench"
    assert data["objective"] == {"metric": "tps", "direction": "maximize"}
    assert data["baseline"] == 100.0
    assert [t["number"] for t in data["trials"]] == [1, 2, 3, 4, 5, 6]
    failed = data["trials"][2]
    assert failed["status"] == "failed" and failed["log_excerpt"] == LOG
    assert data["trials"][1]["agent"] == "agent-1"
    assert data["trials"][0]["total_s"] == 3.0
    assert data["trials"][4]["repeat"] is True
    assert data["trials"][5]["fidelity"] == 0.25
    assert data["best"]["trial"] == 2
    assert [r["name"] for r in data["importance"]] == ["mem", "mode"]
    assert data["verify"] is None


def test_page_is_self_contained_and_complete(store: Store, filled: Experiment) -> None:
    data = experiment_data(store, filled)
    html = render_experiment_html(data, plotly_js=FAKE_PLOTLY)
    assert external_sources(html) == []
    assert "https://" not in html and "http://" not in html
    assert FAKE_PLOTLY in html
    page = parse(html)
    for element_id in (
        "experiment-data",
        "history",
        "parallel",
        "importance",
        "trials",
        "failures",
        "best-config",
    ):
        assert page.ids.count(element_id) == 1, element_id
    assert page.rows == ["1", "2", "3", "4", "5", "6"]
    assert len(embedded(html, "experiment-data")["trials"]) == 6

    figures = embedded(html, "figures")
    traces = {t.get("name"): t for t in figures["history"]["data"]}
    # ok and full-length: 1, 2, 4, 5 (not the failed 3, not the short 6)
    assert traces["trials"]["x"] == [1, 2, 4, 5]
    assert traces["trials"]["y"] == [100.0, 150.0, 120.0, 140.0]
    assert traces["best so far"]["y"] == [100.0, 150.0, 150.0, 150.0]
    assert set(traces["baseline"]["y"]) == {100.0}
    parcoords = figures["parallel"]["data"][0]
    assert parcoords["type"] == "parcoords"
    assert [d["label"] for d in parcoords["dimensions"]] == ["mem", "ratio", "tps"]
    assert all(len(d["values"]) == 5 for d in parcoords["dimensions"])
    bars = figures["importance"]["data"][0]
    # Bar length is importance: the top-ranked knob's bar is the longest.
    assert bars["orientation"] == "h" and bars["y"] == ["mem", "mode"]
    assert bars["x"][0] > bars["x"][1] > 0
    # Parallel coordinates in the knob's units, as postgresql.conf writes them.
    mem = parcoords["dimensions"][0]
    assert mem["ticktext"] and all(t.endswith("B") for t in mem["ticktext"]), mem

    spec = recorded_spec(filled)
    conf = render(spec, {"mem": 65536, "ratio": 0.25, "mode": "b"}, "conf")
    assert page.pre["best-config"] == conf
    assert 'data-format="conf"' in html
    for button in ("copy-config", "download-conf", "download-sql", "download-json"):
        assert button in page.ids


def test_store_text_is_escaped(store: Store, filled: Experiment) -> None:
    html = render_experiment_html(experiment_data(store, filled), plotly_js=None)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "server did not start &lt;oops&gt;" in html
    # the embedded JSON cannot close its script, yet round-trips the log exactly
    assert embedded(html, "experiment-data")["trials"][2]["log_excerpt"] == LOG
    assert parse(html).ids.count("failures") == 1


def test_plotly_src_and_refresh(store: Store, filled: Experiment) -> None:
    data = experiment_data(store, filled)
    html = render_experiment_html(
        data, plotly_js=None, plotly_src="/static/plotly.min.js", refresh_s=5
    )
    assert '<script type="text/javascript" src="/static/plotly.min.js"></script>' in html
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "http-equiv" not in render_experiment_html(data, plotly_js=None)


def test_no_analysis_and_no_success(
    store: Store, make_experiment: Callable[..., Experiment], make_trial: Callable[..., Trial]
) -> None:
    exp = make_experiment("empty")
    store.add_trial(exp, make_trial(1, None, "failed", error="boom"))
    data = experiment_data(store, exp)
    assert data["best"] is None and data["importance"] is None
    html = render_experiment_html(data, plotly_js=None)
    page = parse(html)
    assert page.pre["best-config"] == ""
    assert "autotune analyze empty" in html
    assert embedded(html, "figures") == {
        "verdict": None,
        "history": None,
        "parallel": None,
        "importance": None,
    }
    assert "Not verified. No successful trial yet." in html


def test_write_report_inlines_plotly(store: Store, filled: Experiment, tmp_path: Path) -> None:
    out = write_report(store, "bench", tmp_path / "sub" / "r.html")
    html = out.read_text(encoding="utf-8")
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs()[:2000] in html
    assert len(html) > 1_000_000
    assert external_sources(html) == []


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(report_cli.report)
    return app


def test_cli_writes_the_file(store_url: str, filled: Experiment, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(cli(), ["bench", "--out", str(out), "--store", store_url])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    assert 'id="experiment-data"' in out.read_text(encoding="utf-8")


def test_cli_unknown_experiment(store_url: str, filled: Experiment, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(cli(), ["nope", "--out", str(out), "--store", store_url])
    assert result.exit_code == 2
    assert "no experiment 'nope'" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_recorded_experiment_renders(store: Store) -> None:
    path = ROOT / "experiments" / "recorded" / "pgbench-tpcb-oltp20.json"
    exp = import_experiment(store, read_export(path))
    data = experiment_data(store, exp)
    html = render_experiment_html(data, plotly_js=FAKE_PLOTLY)
    assert external_sources(html) == []
    assert len(parse(html).rows) == len(data["trials"]) == 20
    assert data["verify"] is not None and 'id="verdict"' in html
    # The page leads with the verdict of the stored `autotune verify`, in words.
    verdict = data["verdict"]
    assert verdict is not None and verdict["verified"] is False
    assert verdict["verdict"].startswith("no verified gain: keep the default (best is 0.881×")
    assert html.index('id="verdict"') < html.index('id="charts"') < html.index('id="best"')
    assert "No verified gain: keep the default" in html
    assert "Not recommended: the verification above found no verified gain" in html
    arms = {a["label"]: a for a in verdict["arms"]}
    assert arms["best"]["ci"] == pytest.approx([0.7057, 1.0144], abs=1e-4)
    figures_ = embedded(html, "figures")
    paired = figures_["verdict"]["data"][-1]
    assert paired["y"] == ["best", "pgtune"] and paired["x"][0] == pytest.approx(0.8807, abs=1e-4)
    best = data["best"]
    assert best is not None
    assert parse(html).pre["best-config"] == render(recorded_spec(exp), best["config"], "conf")
    figures = embedded(html, "figures")
    trials = next(t for t in figures["history"]["data"] if t["name"] == "trials")
    ok_full = [t for t in data["trials"] if t["status"] == "ok" and t["full"]]
    assert len(trials["x"]) == len(ok_full)
    # The workload's metrics are in the table; the internal ones stay out of it.
    first = data["trials"][0]
    assert set(first["metrics"]) >= {"tps", "latency_avg_ms", "latency_p95_ms"}
    assert not any("." in name for name in first["metrics"])
    assert f"tps={first['metrics']['tps']:.6g}" in html and "pg.database.xact_commit=" not in html


def test_a_download_that_cannot_be_made_says_why(
    store: Store, filled: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotune.report import _data

    real = _data.render
    declared = [f for f in ("conf", "sql") if experiment_data(store, filled)["best"].get(f)]
    assert declared  # the toy spec has a conf at least
    broken = declared[0]

    def render(spec: Any, config: Any, fmt: str, meta: Any = None) -> str:
        if fmt == broken:
            raise ValueError(f"knob 'mem' has no {broken} syntax")
        return real(spec, config, fmt, meta)

    monkeypatch.setattr(_data, "render", render)
    data = experiment_data(store, filled)
    assert data["best"][broken] is None
    assert data["best"]["unavailable"] == {broken: f"knob 'mem' has no {broken} syntax"}
    html = render_experiment_html(data, plotly_js=None)
    assert f"No .{broken}: knob &#x27;mem&#x27; has no {broken} syntax" in html
    assert re.search(rf'id="download-{broken}" data-format="{broken}" disabled title=', html)

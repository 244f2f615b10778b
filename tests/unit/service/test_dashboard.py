"""The dashboard pages: served from the store, plotly.js from the package, no auth to read."""

from __future__ import annotations

import json
import re
from pathlib import Path

from autotune.service import create_app
from autotune.store import Store, import_experiment, read_export
from tests.unit.service._support import ADMIN, TestClient

RECORDED = Path(__file__).resolve().parents[3] / "experiments" / "recorded"


def test_dashboard_lists_experiments_and_serves_their_pages(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    doc = read_export(RECORDED / "pgbench-tpcb-oltp20.json")
    experiment = import_experiment(store, doc)
    client = TestClient(create_app(store, ADMIN))

    index = client.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    links = re.findall(r'<a class="experiment" href="([^"]+)">', index.text)
    assert links == ["/experiments/pgbench-tpcb-oltp20"]
    assert "20 / 20" in index.text and "http-equiv" not in index.text  # done: no refresh

    page = client.get(links[0])
    assert page.status_code == 200
    assert 'src="/static/plotly.min.js"' in page.text
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?:", page.text)
    data = re.search(
        r'<script type="application/json" id="experiment-data">(.*?)</script>', page.text, re.S
    )
    assert data is not None
    assert len(json.loads(data.group(1))["trials"]) == len(store.trials(experiment)) == 20
    assert page.text.count("<tr data-number=") == 20

    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("application/javascript")
    assert len(js.content) > 1_000_000 and b"plotly" in js.content[:2000].lower()

    missing = client.get("/experiments/nope")
    assert missing.status_code == 404 and "No experiment nope" in missing.text


def test_a_running_experiment_page_refreshes_itself(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    experiment = import_experiment(store, read_export(RECORDED / "pgbench-tpcb-oltp20.json"))
    store.update_experiment(experiment, status="running")
    client = TestClient(create_app(store, ADMIN))
    assert 'http-equiv="refresh"' in client.get("/").text
    assert 'http-equiv="refresh"' in client.get("/experiments/pgbench-tpcb-oltp20").text

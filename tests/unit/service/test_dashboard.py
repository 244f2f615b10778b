"""The dashboard pages: from the store, plotly.js from the package, open or behind a token."""

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


def test_a_dashboard_token_guards_the_pages_and_no_dashboard_serves_none(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    import_experiment(store, read_export(RECORDED / "pgbench-tpcb-oltp20.json"))
    client = TestClient(create_app(store, ADMIN, dashboard_token="view-token-1"))
    page = "/experiments/pgbench-tpcb-oltp20"
    for path in ("/", page):
        refused = client.get(path)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert "pgbench-tpcb-oltp20" not in refused.text  # nothing of the store shown
        assert client.get(path, auth=("any", "wrong")).status_code == 401
        assert client.get(path, auth=("any", "view-token-1")).status_code == 200  # a browser
        bearer = {"Authorization": "Bearer view-token-1"}
        assert client.get(path, headers=bearer).status_code == 200
    assert client.get("/healthz").status_code == 200  # the API is not the dashboard's

    bare = TestClient(create_app(store, ADMIN, dashboard=False))
    assert bare.get("/").status_code == 404 and bare.get(page).status_code == 404

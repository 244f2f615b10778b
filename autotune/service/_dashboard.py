"""The dashboard: the service's experiments as web pages, at ``/``.

Pages are the report's own HTML (``autotune report``), rendered from the store
on each request, with plotly.js served by this server from the installed
package: the dashboard works with no network beyond the server. A page of a
running experiment reloads itself every few seconds. It only reads; like the
rest of the service it should stay on loopback or behind a proxy that
authenticates (``autotune server`` warns when it listens beyond loopback).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import html
import secrets
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from autotune.store import Store

REFRESH_S = 5


@functools.lru_cache(maxsize=1)
def _plotly_js() -> bytes:
    from autotune.report import plotly_js

    return plotly_js().encode()


def _index(store: Store) -> str:
    rows = []
    for exp in store.experiments():
        counts = store.trial_counts(exp)
        finished = counts.get("ok", 0) + counts.get("failed", 0)
        name = html.escape(exp.name)
        rows.append(
            f'<tr data-name="{name}"><td><a class="experiment" '
            f'href="/experiments/{quote(exp.name, safe="")}">{name}</a></td>'
            f"<td>{html.escape(exp.system)}</td><td>{html.escape(exp.workload_name)}</td>"
            f"<td>{html.escape(exp.objective_metric)} ({html.escape(exp.direction)})</td>"
            f"<td>{html.escape(exp.optimizer)}</td><td>{html.escape(exp.status)}</td>"
            f"<td>{finished} / {exp.budget}</td><td>{counts.get('failed', 0)}</td></tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="8">No experiments yet.</td></tr>'
    refresh = (
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        if any(e.status == "running" for e in store.experiments())
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}
<title>autotune: experiments</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }}
</style></head><body>
<h1>autotune: experiments</h1>
<table id="experiments"><thead><tr><th>experiment</th><th>system</th><th>workload</th>
<th>objective</th><th>optimizer</th><th>status</th><th>trials</th><th>failed</th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _presented(request: Request) -> str | None:
    """The token a request carries: ``Bearer TOKEN``, or a browser's Basic login with the
    token as its password (any user name)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def add_dashboard(app: FastAPI, store: Store, token: str | None = None) -> None:
    """Mount ``/``, ``/experiments/NAME`` and ``/static/plotly.min.js`` on ``app``.

    The pages show every trial's config, errors and log excerpts. With ``token`` they
    need it (a browser asks for it as a password); without, they are open, as they
    are on a loopback-only server.
    """
    wanted = None if token is None else _digest(token)

    def viewer(request: Request) -> None:
        if wanted is None:
            return
        given = _presented(request)
        if given is None or not secrets.compare_digest(_digest(given), wanted):
            raise HTTPException(
                401,
                "the dashboard needs its token (autotune server --dashboard-token)",
                headers={"WWW-Authenticate": 'Basic realm="autotune dashboard"'},
            )

    guard = [Depends(viewer)]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False, dependencies=guard)
    def index() -> HTMLResponse:
        return HTMLResponse(_index(store))

    @app.get(
        "/experiments/{name}",
        response_class=HTMLResponse,
        include_in_schema=False,
        dependencies=guard,
    )
    def experiment(name: str) -> HTMLResponse:
        from autotune.report import experiment_data, render_experiment_html

        exp = store.experiment(name)
        if exp is None:
            message = f"No experiment {html.escape(name)!s} in this store."
            page = f'<!doctype html><p>{message} <a href="/">All experiments</a></p>'
            return HTMLResponse(page, status_code=404)
        page = render_experiment_html(
            experiment_data(store, exp),
            plotly_js=None,
            plotly_src="/static/plotly.min.js",
            refresh_s=REFRESH_S if exp.status == "running" else None,
        )
        return HTMLResponse(page)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly() -> Response:
        return Response(
            _plotly_js(),
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )


__all__ = ["add_dashboard"]

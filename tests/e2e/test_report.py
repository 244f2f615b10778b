"""The self-contained HTML report, opened in headless Chromium with no network.

A recorded experiment is imported into a temporary SQLite store, the report is
written, and the page is checked in the browser: plotly drew the history and the
parallel-coordinates plots, the trials table and the best config match the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.report import write_report
from autotune.store import Store
from tests.e2e._pages import DRAWN, FACTS, Expected

pytestmark = pytest.mark.e2e


def _guard(attempted: list[str]) -> Callable[[Any], None]:
    """A route handler: file:// loads, anything else is aborted and noted in ``attempted``."""

    def guard(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()

    return guard


def _open_offline(browser: Any, url: str) -> tuple[Any, Any, list[str]]:
    """A page at ``url`` in a fresh context where every non-file request is aborted (and noted)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    attempted: list[str] = []
    page = context.new_page()
    page.route("**/*", _guard(attempted))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url, wait_until="load")
    try:
        page.wait_for_function(DRAWN, timeout=30_000)
    except Exception:
        raise AssertionError(f"plotly did not draw the report; page errors: {errors}") from None
    return context, page, attempted


def check_report(
    browser: Any, html: Path, expected: Expected, artifacts: Path, stem: str
) -> dict[str, Any]:
    context, page, attempted = _open_offline(browser, html.resolve().as_uri())
    try:
        facts: dict[str, Any] = page.evaluate(FACTS)
        page.screenshot(path=str(artifacts / f"{stem}.png"), full_page=True)
        page.locator("#history").screenshot(path=str(artifacts / f"{stem}-history.png"))
    finally:
        context.close()
    assert attempted == [], f"the report tried the network: {attempted}"
    assert facts["hasData"], "#history has no plotly data"
    assert "trials" in facts["traceNames"], facts["traceNames"]
    assert facts["trialsPoints"] == expected.ok_full
    assert facts["historySvg"] >= 1
    assert facts["historyPoints"] == expected.ok_full
    assert facts["parcoordsEl"] >= 1 or facts["parallelType"] == "parcoords"
    assert facts["rows"] == expected.rows
    assert facts["bestFormat"] == "conf"
    assert facts["bestConfig"] == expected.best_conf
    return facts


def test_report_in_chromium(
    browser: Any, recorded: tuple[Store, Expected], tmp_path: Path, artifacts: Path
) -> None:
    store, expected = recorded
    out = tmp_path / "report.html"
    write_report(store, expected.name, out)
    check_report(browser, out, expected, artifacts, "report")


def test_offline_guard_sees_network_requests(browser: Any, tmp_path: Path) -> None:
    """The guard that proves the report offline does notice a page that reaches out."""
    page_file = tmp_path / "online.html"
    page_file.write_text(
        '<!doctype html><img src="http://example.invalid/x.png">'
        '<script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>',
        encoding="utf-8",
    )
    context = browser.new_context()
    attempted: list[str] = []
    try:
        page = context.new_page()
        page.route("**/*", _guard(attempted))
        page.goto(page_file.resolve().as_uri(), wait_until="load")
    finally:
        context.close()
    assert sorted(attempted) == [
        "http://example.invalid/x.png",
        "https://cdn.plot.ly/plotly-2.35.2.min.js",
    ]

"""The dashboard of a running `autotune server`, in headless Chromium.

A real server process serves a store holding a recorded experiment. The browser
opens the experiments list, follows the link to the experiment, and checks that
plotly drew every trial and that the best config is the store's. Requests may
only go to the server itself: the page's JavaScript comes from it, not a CDN.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from autotune.store import Store
from tests.e2e._pages import DRAWN, FACTS, Expected

pytestmark = pytest.mark.e2e

ADMIN = "e2e-admin-token-" + "x" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(recorded: tuple[Store, Expected], tmp_path: Path) -> Iterator[tuple[str, Expected]]:
    """`autotune server` on the recorded store, on a free loopback port; stopped after."""
    store, expected = recorded
    url = store.url
    store.close()
    port = free_port()
    env = {**os.environ, "AUTOTUNE_ADMIN_TOKEN": ADMIN}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotune", "server", "--store", url, "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "server.log").read_text())
            time.sleep(0.2)
        yield base, expected
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_dashboard_in_chromium(browser: Any, served: tuple[str, Expected], artifacts: Path) -> None:
    base, expected = served
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    elsewhere: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page = context.new_page()
    page.route("**/*", guard)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{base}/", wait_until="load")
        links = page.locator("a.experiment")
        assert links.count() == 1 and links.first.inner_text() == expected.name
        page.screenshot(path=str(artifacts / "dashboard-index.png"), full_page=True)
        links.first.click()
        page.wait_for_url(f"{base}/experiments/{expected.name}")
        try:
            page.wait_for_function(DRAWN, timeout=30_000)
        except Exception:
            raise AssertionError(f"plotly did not draw; page errors: {errors}") from None
        facts: dict[str, Any] = page.evaluate(FACTS)
        page.screenshot(path=str(artifacts / "dashboard-experiment.png"), full_page=True)
    finally:
        context.close()
    assert elsewhere == [], f"the dashboard reached beyond its server: {elsewhere}"
    assert facts["trialsPoints"] == expected.ok_full == facts["historyPoints"]
    assert facts["parcoordsEl"] >= 1 or facts["parallelType"] == "parcoords"
    assert facts["rows"] == expected.rows
    assert facts["bestConfig"] == expected.best_conf

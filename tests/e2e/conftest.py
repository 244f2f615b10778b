"""Headless Chromium for the end-to-end tests: Debian's /usr/bin/chromium, driven by Playwright.

Playwright never downloads a browser here: it launches the system Chromium by path.
Without it the tests skip, saying how to enable them, except under CI, where a
missing browser is a failure (``tests.conftest.unavailable``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import INSTALL_DEV, unavailable

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Root needs --no-sandbox; SwiftShader gives the WebGL that plotly's parcoords draws with.
LAUNCH_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    if not CHROMIUM.exists():
        unavailable(f"end-to-end tests need {CHROMIUM}: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable(f"end-to-end tests need playwright: {INSTALL_DEV}")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go: tests/e2e/artifacts/ (gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Any, Any]:
    """A store holding the recorded pgbench-tpcb-oltp20 experiment, and what pages must show."""
    from tests.e2e._pages import load_recorded

    return load_recorded(tmp_path)

"""Shared test helpers, and the run's closing lines on what it skipped."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

INSTALL_DEV = "pip install -c constraints.txt -e '.[dev]'"


def unavailable(reason: str) -> None:
    """Skip: a tool the test needs is missing. ``reason`` says how to get it.

    Under CI (the ``CI`` environment variable, which ``.ci/run`` sets) a missing
    tool is a failure instead: ``.ci/run`` installs everything, so a skip there
    would hide a broken install step.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure; .ci/run installs it)")
    pytest.skip(reason)


def _reason(report: Any) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return str(text).removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """One line per group of skipped tests, with how to enable it: no silent skips."""
    groups = Counter(_reason(r) for r in terminalreporter.stats.get("skipped", []))
    if not groups:
        return
    terminalreporter.section("skipped", sep="-", yellow=True)
    for reason, count in sorted(groups.items(), key=lambda item: (-item[1], item[0])):
        tests = "test" if count == 1 else "tests"
        terminalreporter.write_line(f"skipped {count} {tests}: {reason}", yellow=True)

"""The fault suite: real processes killed, interrupted, cut off from their store, and
given configs that break the server; each test checks nothing was lost, nothing
duplicated, nothing left running and the target healthy.

Marked ``faults`` (and ``pg``); it runs with the rest of the suite in CI, and alone
with ``pytest -m faults``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import sandbox, workdir

__all__ = ["sandbox", "workdir"]

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.pg)

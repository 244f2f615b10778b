"""Fixtures: the synthetic experiment of ``_support``, built once and copied per test.

Recording 40 trials takes a second (one SQLite transaction each); copying a
store that holds them takes milliseconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from autotune.analysis import analyze_experiment
from autotune.store import Experiment, Store
from tests.unit.analysis._support import create_pg_experiment, fill


@pytest.fixture(scope="session")
def filled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store file holding experiment "pg" with the synthetic trials, never opened by tests."""
    path = tmp_path_factory.mktemp("template") / "autotune.db"
    store = Store(f"sqlite:///{path}")
    try:
        fill(store, create_pg_experiment(store))
    finally:
        store.close()
    return path


@pytest.fixture
def store(store_url: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    """The test's own store; a copy of the filled template when the test uses ``filled``."""
    if "filled" in request.fixturenames:
        target = Path(str(make_url(store_url).database))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(request.getfixturevalue("filled_template"), target)
    st = Store(store_url)
    yield st
    st.close()


@pytest.fixture
def filled(store: Store) -> Experiment:
    """Experiment "pg" with 40 synthetic trials, in the test's own store (``store_url``)."""
    return store.require_experiment("pg")


@pytest.fixture(scope="module")
def analysed(
    tmp_path_factory: pytest.TempPathFactory, filled_template: Path
) -> Iterator[tuple[Store, Experiment, dict[str, Any]]]:
    """One analysis of the synthetic experiment, shared by the tests that only read it."""
    path = tmp_path_factory.mktemp("analysed") / "autotune.db"
    shutil.copyfile(filled_template, path)
    store = Store(f"sqlite:///{path}")
    experiment = store.require_experiment("pg")
    result = analyze_experiment(store, experiment)
    yield store, experiment, result
    store.close()

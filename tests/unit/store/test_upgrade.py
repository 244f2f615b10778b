"""Stores made by earlier releases: refused with the upgrade command, then upgraded intact.

tests/data/stores/ keeps one real SQLite store per released schema, each made by
that release's `autotune tune` on a real PostgreSQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.store import Store, StoreError
from tests.conftest import DATA

STORES = sorted((DATA / "stores").glob("v*.db"))


@pytest.mark.parametrize("old", STORES, ids=[p.stem for p in STORES])
def test_old_store_is_refused_then_upgraded_without_loss(old: Path, tmp_path: Path) -> None:
    copy = tmp_path / old.name
    shutil.copy(old, copy)
    url = f"sqlite:///{copy}"
    with pytest.raises(StoreError) as err:
        Store(url)
    assert f"autotune store upgrade --store {url}" in str(err.value)
    assert copy.read_bytes() == old.read_bytes()  # refusing touched nothing

    result = CliRunner().invoke(app, ["store", "upgrade", "--store", url])
    assert result.exit_code == 0, result.output
    assert "upgraded from" in result.output

    store = Store(url)
    (experiment,) = store.experiments()
    trials = store.trials(experiment)
    assert len(trials) == 3
    assert all(t.finished for t in trials)
    assert trials[0].is_baseline and trials[0].metrics["tps"] > 0
    assert experiment.status == "running"  # a v0.1.0 experiment can be resumed
    store.close()


def test_the_stores_exist() -> None:
    assert [p.name for p in STORES] == ["v0.1.0.db"]

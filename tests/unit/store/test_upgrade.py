"""Stores made by earlier releases: refused with the upgrade command, then upgraded intact.

tests/data/stores/ keeps one real SQLite store per released schema, each made by
that release's `autotune tune` on a real PostgreSQL (v0.2.0 to v0.5.0: 3 trials of
tiny-tpcb, --optimizer random, run to the end).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotune.agent import TrialOutcome
from autotune.cli import app
from autotune.store import Store, StoreError, now, upgrade
from autotune.tuner import Scheduler
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
    # v0.1.0 had no status (its experiments can be resumed); v0.2.0 ran to the end.
    assert experiment.status == ("running" if old.stem == "v0.1.0" else "done")
    # v0.4.0: no analyses before it; one can be kept now.
    assert store.analyses(experiment) == []
    store.add_analysis(experiment, "analyze", {"top": ["work_mem"]})
    assert [a.result for a in store.analyses(experiment, "analyze")] == [{"top": ["work_mem"]}]
    # v0.3.0: every earlier trial ran the full length, once; no optimiser state was kept.
    assert all(t.fidelity == 1.0 and not t.repeat and t.full for t in trials)
    assert experiment.optimizer_state is None
    assert experiment.repeats == 0 and experiment.deadline is None
    assert [t.number for t in store.history(experiment)] == [1, 2, 3]
    # v0.5.0: every earlier trial was the search's; none was a verification round.
    assert all(t.phase == "search" and t.round is None and t.arm is None for t in trials)
    assert experiment.settings.get("verify") is None
    # v0.6.0: no agent said its host before it; an upgraded store keeps hosts apart now.
    assert not experiment.allow_colocated
    assert all(a.host is None for a in store.agents())
    store.close()


@pytest.mark.parametrize("old", STORES, ids=[p.stem for p in STORES])
def test_an_upgraded_store_resumes_with_racing(old: Path, tmp_path: Path) -> None:
    """After the upgrade the old experiment runs on: new trials, then a repeat."""
    copy = tmp_path / old.name
    shutil.copy(old, copy)
    url = f"sqlite:///{copy}"
    upgrade(url)
    store = Store(url)
    (experiment,) = store.experiments()
    store.update_experiment(experiment, status="running", budget=5, settings={"repeats": 1})
    scheduler = Scheduler(store)
    while (lease := scheduler.lease("a")) is not None:
        scheduler.report(
            "a",
            lease.trial_id,
            lease.lease_id,
            TrialOutcome(status="ok", metrics={"tps": 100.0}, started_at=now(), finished_at=now()),
        )
    trials = store.trials(experiment)
    assert [t.number for t in trials] == [1, 2, 3, 4, 5]
    assert [t.repeat for t in trials] == [False, False, False, False, True]
    assert trials[4].is_baseline and trials[4].config == trials[0].config  # raced baseline first
    store.close()


def test_the_stores_exist() -> None:
    assert [p.name for p in STORES] == [
        "v0.1.0.db",
        "v0.2.0.db",
        "v0.3.0.db",
        "v0.4.0.db",
        "v0.5.0.db",
    ]

"""The results store on PostgreSQL: same code, same schema, through the real CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from autotune.store import Proposal, Store, StoreError, Trial, now
from autotune.systems.postgres import Sandbox
from tests.conftest import DATA
from tests.integration.pgutil import run_cli

pytestmark = pytest.mark.pg


def store_url(box: Sandbox) -> str:
    params = box.conn_params()
    return (
        f"postgresql+psycopg2://{params['user']}@/{params['dbname']}"
        f"?host={params['host']}&port={params['port']}"
    )


def test_store_round_trip_on_postgres(sandbox: Sandbox) -> None:
    store = Store(store_url(sandbox))
    experiment = store.create_experiment(
        name="pg-store",
        system="postgres",
        spec_content="system: postgres",
        spec_hash="a" * 64,
        spec_path="knobs/postgres.yaml",
        workload_name="w",
        workload_content="name: w",
        workload_hash="b" * 64,
        workload_path="w.yaml",
        objective_metric="tps",
        direction="maximize",
        optimizer="gp",
        seed=0,
        settings={"knobs": ["work_mem"]},
    )
    t = now()
    trial = Trial(
        number=1, config={"work_mem": 4096}, status="ok", objective=12.5,
        started_at=t, finished_at=t, is_baseline=True, metrics={"tps": 12.5},
        timings={"measure_s": 1.0}, status_history=[("ok", t.isoformat())],
    )  # fmt: skip
    store.add_trial(experiment, trial)
    with pytest.raises(StoreError):
        store.add_trial(experiment, trial)
    assert store.trials(experiment) == [trial]
    # v0.3.0's columns: fidelity and repeat on trials, the optimiser's state on experiments.
    short = dataclasses.replace(trial, number=2, is_baseline=False, fidelity=0.25)
    again = dataclasses.replace(trial, number=3, repeat=True)
    store.add_trial(experiment, short)
    store.add_trial(experiment, again)
    store.add_proposals(experiment, [Proposal(4, {"work_mem": 8192}, fidelity=0.5, repeat=True)])
    assert [(t.fidelity, t.repeat) for t in store.history(experiment)] == [
        (1.0, False), (0.25, False), (1.0, True), (0.5, True),
    ]  # fmt: skip
    store.save_optimizer_state(experiment, {"rungs": [0.25, 1.0], "arm": "gp"})
    assert store.require_experiment("pg-store").optimizer_state == {
        "rungs": [0.25, 1.0],
        "arm": "gp",
    }
    store.close()
    # Re-opening an up-to-date store is a no-op.
    assert Store(store_url(sandbox)).trials(experiment)[:3] == [trial, short, again]


def test_tune_with_a_postgres_store(workdir: Path, sandbox: Sandbox) -> None:
    url = store_url(sandbox)
    run_cli(
        workdir, "tune", "--system", "postgres", "--workload",
        str(DATA / "workloads" / "tiny-tpcb.yaml"), "--trials", "2", "--duration", "1",
        "--experiment", "on-pg", "--knobs", "work_mem", "--store", url,
    )  # fmt: skip
    trials = json.loads(
        run_cli(workdir, "trials", "on-pg", "--format", "json", "--store", url).stdout
    )
    assert len(trials) == 2
    assert trials[0]["metrics"]["tps"] > 0

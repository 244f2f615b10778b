"""The results store on PostgreSQL: same code, same schema, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotune.store import Store, StoreError, Trial, now
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
    store.close()
    # Re-opening an up-to-date store is a no-op.
    assert Store(store_url(sandbox)).trials(experiment) == [trial]


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

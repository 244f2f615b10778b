"""The matrices: knob columns in the space's scale, the loss, the metrics."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from autotune.analysis import build_dataset
from autotune.store import Store
from autotune.tuner import experiment_space
from tests.unit.analysis._support import KNOBS, create_pg_experiment, synthetic_trials


def test_columns_follow_the_space_and_belong_to_their_knob(store: Store) -> None:
    exp = create_pg_experiment(store)
    space = experiment_space(exp)
    trials = synthetic_trials(space, 8)
    sb = space.spec.knobs["shared_buffers"]
    assert sb.min is not None and sb.max is not None
    middle = round(math.sqrt(sb.min * sb.max))  # half-way on the log scale
    trials[1] = replace(
        trials[1],
        config={
            **trials[1].config,
            "shared_buffers": middle,
            "effective_io_concurrency": 0,
            "wal_compression": "lz4",
        },
    )
    data = build_dataset(exp, space, trials)
    assert data.knobs == KNOBS
    assert data.features.shape == (8, len(data.columns))
    column = dict(zip(data.columns, data.features[1], strict=True))
    owner = dict(zip(data.columns, data.owners, strict=True))
    assert column["shared_buffers"] == pytest.approx(0.5, abs=1e-3)  # log-scaled, not linear
    assert column["effective_io_concurrency=0"] == 1.0  # the special value's indicator
    assert owner["effective_io_concurrency=0"] == "effective_io_concurrency"
    assert [c for c in data.columns if c.startswith("wal_compression")] == [
        f"wal_compression={v}" for v in ("off", "pglz", "lz4", "zstd")
    ]
    assert column["wal_compression=lz4"] == 1.0
    assert sum(column[f"wal_compression={v}"] for v in ("off", "pglz", "zstd")) == 0.0
    assert {owner[c] for c in data.columns} == set(KNOBS)


def test_the_loss_is_lower_for_better_and_metrics_split_by_dot(store: Store) -> None:
    exp = create_pg_experiment(store)  # maximises tps
    trials = synthetic_trials(experiment_space(exp), 7)
    del trials[2].metrics["host.ctxt"]  # a metric one trial lacks
    data = build_dataset(exp, experiment_space(exp), trials)
    assert data.loss.tolist() == [-t.objective for t in trials if t.objective is not None]
    assert data.workload == ["latency_avg_ms", "tps"]
    assert all("." in m for m in data.internal) and len(data.internal) == 11
    ctxt = data.metric_matrix(["host.ctxt"])[:, 0]
    assert np.isnan(ctxt[2]) and np.isfinite(np.delete(ctxt, 2)).all()


def test_knobs_missing_from_a_config_take_their_default(store: Store) -> None:
    exp = create_pg_experiment(store)
    space = experiment_space(exp)
    trials = synthetic_trials(space, 6)
    trials[0] = replace(trials[0], config={"shared_buffers": trials[0].config["shared_buffers"]})
    data = build_dataset(exp, space, trials)
    assert np.array_equal(data.features[0], space.encode(space.default() | trials[0].config))


def test_only_finished_full_length_ok_trials_are_rows(store: Store) -> None:
    exp = create_pg_experiment(store)
    trials = synthetic_trials(experiment_space(exp), 12)
    for trial in trials[:6]:
        store.add_trial(exp, trial)
    store.add_trial(exp, replace(trials[6], fidelity=0.25))  # short: not comparable
    store.add_trial(exp, replace(trials[7], status="failed", objective=None))
    store.add_trial(exp, replace(trials[8], status="pending", objective=None))
    store.add_trial(exp, replace(trials[9], objective=None))  # ok but nothing measured
    data = build_dataset(exp, experiment_space(exp), store.trials(exp))
    assert data.trials == [t.number for t in trials[:6]]
    assert data.features.shape[0] == data.metrics.shape[0] == len(data.loss) == 6

"""A baseline as the target ran it: the agent reports the config it measured, the store
keeps it, and the controls re-measure it; the scheduler checks what it takes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from autotune.store import BadReport, Experiment, Store
from autotune.tuner import Scheduler
from tests.unit.tuner.test_tuner import outcome, sched_exp

__all__ = ["sched_exp"]  # the fixture, used here by name

FOUND = {"mem": 2048, "ratio": 0.7}  # what the target ran before the session


def test_a_reported_baseline_config_is_kept_and_the_controls_measure_it(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    sched_exp(budget=5, controls=2)
    scheduler = Scheduler(store)
    phases = []
    while (lease := scheduler.lease("a")) is not None:
        phases.append(lease.phase)
        config = dict(lease.config)
        if lease.is_baseline:
            config.update(FOUND)  # as the runner does with Agent.as_found
        result = dataclasses.replace(
            outcome(config), config=config if config != lease.config else None
        )
        scheduler.report("a", lease.trial_id, lease.lease_id, result)
    trials = store.trials(store.require_experiment("exp"))
    assert trials[0].is_baseline and trials[0].config == {"mem": 2048, "ratio": 0.7, "mode": "a"}
    controls = [t for t in trials if t.phase == "control"]
    assert "control" in phases and controls
    assert all(t.config == trials[0].config for t in controls)


def test_only_a_baseline_may_report_its_config_and_each_value_is_checked(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    sched_exp(budget=3)
    scheduler = Scheduler(store)
    lease = scheduler.lease("a")
    assert lease is not None and lease.is_baseline
    bad = dataclasses.replace(outcome(lease.config), config={**lease.config, "mem": 10**12})
    with pytest.raises(BadReport, match="mem"):
        scheduler.report("a", lease.trial_id, lease.lease_id, bad)
    other = dataclasses.replace(outcome(lease.config), config={"mem": 2048})
    with pytest.raises(BadReport, match="over the knobs it was leased with"):
        scheduler.report("a", lease.trial_id, lease.lease_id, other)
    scheduler.report("a", lease.trial_id, lease.lease_id, outcome(lease.config))  # still held
    search = scheduler.lease("a")
    assert search is not None and not search.is_baseline
    sneaky = dataclasses.replace(outcome(search.config), config=dict(search.config))
    with pytest.raises(BadReport, match="only a baseline"):
        scheduler.report("a", search.trial_id, search.lease_id, sneaky)

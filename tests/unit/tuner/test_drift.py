"""Drift controls: the default again every N search trials, and trials read against it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from autotune.store import Experiment, Store, Trial
from autotune.tuner import Scheduler
from autotune.tuner._drift import control_due, control_levels, corrected_objectives
from tests.unit.tuner.test_tuner import outcome, sched_exp, tps

__all__ = ["sched_exp"]  # the fixture, used here by name


def _t(number: int, value: float | None, phase: str = "search", **fields: Any) -> Trial:
    return Trial(
        number=number,
        config={"mem": number},
        status="ok" if value is not None else "failed",
        objective=value,
        started_at=None,
        finished_at=None,
        phase=phase,
        **fields,
    )


def test_each_trial_is_read_against_the_latest_control_before_it() -> None:
    trials = [
        _t(1, 100.0, is_baseline=True),
        _t(2, 110.0),  # the host as at the baseline: as measured
        _t(3, 80.0, "control"),  # the host slowed to 0.8x
        _t(4, 96.0),  # 96 at 0.8x is 120 at the baseline's level
        _t(5, None, "control"),  # a failed control says nothing
        _t(6, 84.0),
        _t(7, 125.0, "control"),
        _t(8, 125.0),  # as fast as the default, now: 1.0x
    ]
    assert control_levels(trials) == [(1, 100.0), (3, 80.0), (7, 125.0)]
    corrected = corrected_objectives(trials)
    assert corrected == {
        1: 100.0, 2: 110.0, 4: pytest.approx(120.0), 6: pytest.approx(105.0), 8: 100.0
    }  # fmt: skip
    assert corrected_objectives(trials[:2]) == {}  # no control: nothing to correct by


def test_a_control_is_due_every_n_search_trials_after_the_baseline() -> None:
    trials = [_t(1, 100.0, is_baseline=True), _t(2, 1.0), _t(3, 1.0)]
    assert not control_due(trials, 3)
    trials.append(_t(4, 1.0))
    assert control_due(trials, 3)
    trials.append(_t(5, 90.0, "control"))
    assert not control_due(trials, 3)
    assert not control_due([], 3)  # nothing to control before the baseline


def test_the_scheduler_runs_controls_outside_the_budget_and_tells_corrected_losses(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    sched_exp(budget=7, controls=3)
    scheduler = Scheduler(store)
    slow = 1.0  # the host's speed, halved after the baseline
    phases = []
    while (lease := scheduler.lease("a")) is not None:
        phases.append(lease.phase)
        result = outcome(lease.config)
        result.metrics["tps"] *= slow
        scheduler.report("a", lease.trial_id, lease.lease_id, result)
        slow = 0.5
    assert phases == ["search"] * 4 + ["control"] + ["search"] * 3
    exp = store.require_experiment("exp")
    trials = store.trials(exp)
    assert sum(t.searched for t in trials) == 7 and exp.status == "done"
    (control,) = [t for t in trials if t.phase == "control"]
    assert control.config == trials[0].config and not control.is_baseline
    # Trials 2-4 ran before any control: told as measured, at half speed. Those after it
    # are told at the baseline's level again: their own tps.
    observed = {
        str(sorted(c.items())): -loss
        for c, loss, _ in scheduler._cache[exp.id].optimizer.observations_
        if loss is not None
    }
    last = max(t.number for t in trials)  # reported after the last proposal: never told
    for t in trials:
        if t.searched and not t.is_baseline and t.number != last:
            seen = observed[str(sorted(t.config.items()))]
            factor = 0.5 if t.number < control.number else 1.0
            assert seen == pytest.approx(tps(t.config) * factor)

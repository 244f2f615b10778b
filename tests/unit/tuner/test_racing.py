"""Racing the incumbent: who gets the budget's last trials, re-measured."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from autotune.store import Experiment, Store, Trial
from autotune.tuner import Scheduler, plan_repeats, robust_best
from autotune.tuner._racing import contenders, next_repeat, pooled_std
from tests.unit._support import MACHINE
from tests.unit.tuner.test_tuner import NAMES, outcome, run_all, tps

MakeTrial = Callable[..., Trial]


def cfg(n: int) -> dict[str, Any]:
    return {"mem": 4096 + n, "ratio": 0.5}


@pytest.fixture
def search(make_trial: MakeTrial) -> list[Trial]:
    """The baseline (id 0) and five searched configs; 3, 1 and 4 are the best three."""
    values = {0: 100.0, 1: 250.0, 2: 200.0, 3: 300.0, 4: 240.0, 5: 100.0}
    return [make_trial(n + 1, v, config=cfg(n), baseline=n == 0) for n, v in values.items()]


def repeats_of(make_trial: MakeTrial, start: int, *pairs: tuple[int, float | None]) -> list[Trial]:
    """Finished repeat trials, numbered from ``start``: (config id, tps or None if failed)."""
    return [
        make_trial(
            start + i,
            value,
            "ok" if value is not None else "failed",
            config=cfg(which),
            baseline=which == 0,
            repeat=True,
        )
        for i, (which, value) in enumerate(pairs)
    ]


def ids(picks: list[Any]) -> list[int]:
    return [p.config["mem"] - 4096 for p in picks]


def test_contenders_are_the_baseline_and_the_best_three_searched(search: list[Trial]) -> None:
    field_ = contenders(search, "maximize")
    assert ids(field_) == [0, 3, 1, 4]
    assert [c.is_baseline for c in field_] == [True, False, False, False]
    assert all(c.attempts == 1 for c in field_)
    # For minimize, the lowest objectives are the best: 5 (100) then 2 (200), then 4 (240).
    assert ids(contenders(search, "minimize")) == [0, 5, 2, 4]


def test_short_runs_and_repeats_do_not_rank(search: list[Trial], make_trial: MakeTrial) -> None:
    trials = [
        *search,
        make_trial(7, 999.0, config=cfg(6), fidelity=1 / 3),  # screened, never run full
        *repeats_of(make_trial, 8, (2, 999.0)),  # a repeat does not promote config 2
    ]
    assert ids(contenders(trials, "maximize")) == [0, 3, 1, 4]


def test_every_contender_gets_one_repeat_first_baseline_first(search: list[Trial]) -> None:
    assert ids(plan_repeats(search, "maximize", 4)) == [0, 3, 1, 4]
    assert ids(plan_repeats(search, "maximize", 2)) == [0, 3]


def test_then_the_best_optimistic_bound_and_the_baseline_up_to_three(
    search: list[Trial], make_trial: MakeTrial
) -> None:
    trials = [
        *search,
        *repeats_of(make_trial, 7, (0, 104.0), (3, 296.0), (1, 330.0), (4, 238.0)),
    ]
    field_ = contenders(trials, "maximize")
    # Pooled over four pairs: variances 8, 8, 3200 and 2, one degree of freedom each.
    assert pooled_std(field_) == pytest.approx((3218 / 4) ** 0.5)
    # Config 3 (mean 298, steady) leads; 1 (mean 290, wild) trails it until 3 has
    # enough runs that its optimistic bound falls behind 1's. The baseline goes
    # second: one run fewer than the leader, and below its cap of three.
    assert ids(plan_repeats(trials, "maximize", 6)) == [3, 0, 3, 3, 3, 1]


def test_repeats_in_flight_count_as_measurements(
    search: list[Trial], make_trial: MakeTrial
) -> None:
    in_flight = make_trial(7, None, "leased", config=cfg(0), baseline=True, repeat=True)
    pending = make_trial(8, None, "pending", config=cfg(3), repeat=True)
    assert ids(plan_repeats([*search, in_flight, pending], "maximize", 3)) == [1, 4, 3]


def test_failed_repeats_count_as_attempts_not_results(
    search: list[Trial], make_trial: MakeTrial
) -> None:
    trials = [*search, *repeats_of(make_trial, 7, (0, 101.0), (3, None), (1, 251.0), (4, 241.0))]
    field_ = contenders(trials, "maximize")
    three = next(c for c in field_ if c.config == cfg(3))
    assert three.attempts == 2 and three.losses == [-300.0]


def test_no_contender_without_a_success(make_trial: MakeTrial) -> None:
    failed = [make_trial(1, None, "failed", config=cfg(0), baseline=True)]
    assert plan_repeats(failed, "maximize", 2) == []
    assert next_repeat([]) is None


def test_only_the_baseline_is_raced_when_nothing_else_succeeded(make_trial: MakeTrial) -> None:
    trials = [
        make_trial(1, 100.0, config=cfg(0), baseline=True),
        make_trial(2, None, "failed", config=cfg(1)),
    ]
    assert ids(plan_repeats(trials, "maximize", 3)) == [0, 0, 0]


# -- in the scheduler -------------------------------------------------------------------------


@pytest.fixture
def racing_exp(make_experiment: Callable[..., Experiment]) -> Callable[..., Experiment]:
    def make(budget: int, repeats: int, parallelism: int = 1) -> Experiment:
        settings = {
            "knobs": NAMES,
            "duration_s": 10.0,
            "budget": budget,
            "parallelism": parallelism,
            "repeats": repeats,
            "machine": {"memory_bytes": MACHINE.memory_bytes, "cpus": MACHINE.cpus},
        }
        return make_experiment("race", optimizer="random", settings=settings)

    return make


def test_the_budgets_last_trials_are_repeats_of_the_best(
    store: Store, racing_exp: Callable[..., Experiment]
) -> None:
    exp = racing_exp(budget=9, repeats=3)
    assert run_all(Scheduler(store)) == 9
    trials = store.trials(exp)
    search, repeats = trials[:6], trials[6:]
    assert not any(t.repeat for t in search)
    assert all(t.repeat and t.fidelity == 1.0 and t.ok for t in repeats)
    ranked = sorted(search[1:], key=lambda t: -tps(t.config))
    # Baseline first, then the two best searched configs.
    assert [t.config for t in repeats] == [search[0].config, ranked[0].config, ranked[1].config]
    assert repeats[0].is_baseline and not repeats[1].is_baseline
    rb = robust_best(trials, "maximize")
    assert rb is not None and rb.confirmed and rb.trial.number == ranked[0].number
    assert rb.best.n == 2 and rb.baseline is not None and rb.baseline.n == 2
    assert store.require_experiment("race").status == "done"


def test_parallel_repeats_spread_over_contenders(
    store: Store, racing_exp: Callable[..., Experiment]
) -> None:
    exp = racing_exp(budget=7, repeats=3, parallelism=3)
    scheduler = Scheduler(store)
    for _ in range(4):  # the search phase, one at a time
        lease = scheduler.lease("a")
        assert lease is not None and not lease.repeat
        scheduler.report("a", lease.trial_id, lease.lease_id, outcome(lease.config))
    held = [scheduler.lease(agent) for agent in ("a", "b", "c")]
    assert all(lease is not None and lease.repeat for lease in held)
    configs = [lease.config for lease in held if lease is not None]
    assert len({str(sorted(c.items())) for c in configs}) == 3  # one each, not all on the leader
    assert [t.number for t in store.trials(exp) if t.repeat] == [5, 6, 7]

"""Losses, best trials, summaries, and the tuning loop with a fake agent."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from autotune.agent import TrialOutcome
from autotune.space import Space
from autotune.spec import Config, Spec
from autotune.store import Experiment, LeaseConflict, Store, Trial, now
from autotune.tuner import Scheduler, best_trial, loss_of, summarize
from tests.unit._support import MACHINE

MakeTrial = Callable[..., Trial]
MakeExperiment = Callable[..., Experiment]


# -- loss_of and best_trial ---------------------------------------------------------------------


def test_loss_of(make_trial: MakeTrial) -> None:
    assert loss_of(make_trial(1, 250.0), "maximize") == -250.0
    assert loss_of(make_trial(1, 250.0), "minimize") == 250.0
    assert loss_of(make_trial(1, -3.0), "maximize") == 3.0
    assert loss_of(make_trial(1, 0.0), "minimize") == 0.0
    assert loss_of(make_trial(1, None, "failed"), "maximize") is None
    assert loss_of(make_trial(1, None, "failed"), "minimize") is None
    # a failed trial never counts, whatever number it carries
    assert loss_of(make_trial(1, 5.0, "failed"), "minimize") is None
    assert loss_of(make_trial(1, None, "ok"), "minimize") is None


def test_best_trial_ignores_short_runs(make_trial: MakeTrial) -> None:
    trials = [make_trial(1, 100.0, baseline=True), make_trial(2, 900.0, fidelity=0.25)]
    best = best_trial(trials, "maximize")
    assert best is not None and best.number == 1


def test_best_trial_maximize_and_minimize(make_trial: MakeTrial) -> None:
    trials = [
        make_trial(1, 100.0, baseline=True),
        make_trial(2, 300.0),
        make_trial(3, None, "failed"),
        make_trial(4, 50.0),
        make_trial(5, 1000.0, "failed"),  # failed trials never win
        make_trial(6, 0.0),
    ]
    best_max = best_trial(trials, "maximize")
    assert best_max is not None and best_max.number == 2
    best_min = best_trial(trials, "minimize")
    assert best_min is not None and best_min.number == 6  # 0.0 is a real value, not "missing"


def test_best_trial_with_negative_objectives(make_trial: MakeTrial) -> None:
    trials = [make_trial(1, -5.0), make_trial(2, -1.0), make_trial(3, -9.0)]
    assert best_trial(trials, "maximize").number == 2  # type: ignore[union-attr]
    assert best_trial(trials, "minimize").number == 3  # type: ignore[union-attr]


def test_best_trial_without_successes(make_trial: MakeTrial) -> None:
    assert best_trial([], "maximize") is None
    assert best_trial([make_trial(1, None, "failed")], "minimize") is None


# -- summarize ----------------------------------------------------------------------------------


def cfg(n: int) -> dict[str, Any]:
    """A config of its own per trial number: hand-made trials must not share one by accident."""
    return {"mem": 4096 + n, "ratio": 0.5}


def test_summarize_maximize(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    exp = make_experiment("max", "maximize")
    store.add_trial(
        exp, make_trial(1, 100.0, baseline=True, timings={"total_s": 10.0, "measure_s": 8.0})
    )
    store.add_trial(
        exp, make_trial(2, 150.0, config=cfg(2), timings={"total_s": 10.0, "measure_s": 6.0})
    )
    store.add_trial(exp, make_trial(3, None, "failed", config=cfg(3), timings={"total_s": 4.0}))
    store.add_trial(
        exp, make_trial(4, 120.0, config=cfg(4), timings={"total_s": 6.0, "measure_s": 6.0})
    )
    s = summarize(store, exp)
    assert s.experiment == "max"
    assert s.direction == "maximize"
    assert s.objective_metric == "tps"
    assert s.baseline is not None and s.baseline.number == 1
    assert s.best is not None and s.best.number == 2
    assert s.trials == 4
    assert s.failed == 1
    assert s.measure_share == pytest.approx(20.0 / 30.0)
    assert s.improvement_pct == pytest.approx(50.0)
    assert s.store_url == store.safe_url


def test_summarize_minimize(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    exp = make_experiment("min", "minimize")
    store.add_trial(exp, make_trial(1, 20.0, baseline=True))
    store.add_trial(exp, make_trial(2, 15.0, config=cfg(2)))
    store.add_trial(exp, make_trial(3, 30.0, config=cfg(3)))
    s = summarize(store, exp)
    assert s.best is not None and s.best.number == 2
    assert s.improvement_pct == pytest.approx(25.0)  # 20 ms -> 15 ms is a 25% improvement
    assert s.measure_share is None  # no timings recorded


def test_improvement_is_negative_when_nothing_beats_the_baseline(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    exp = make_experiment("worse", "maximize")
    store.add_trial(exp, make_trial(1, 100.0, baseline=True))
    s = summarize(store, exp)
    assert s.best is not None and s.best.number == 1
    assert s.improvement_pct == pytest.approx(0.0)
    exp2 = make_experiment("worse-min", "minimize")
    store.add_trial(exp2, make_trial(1, 10.0, baseline=True))
    store.add_trial(exp2, make_trial(2, 10.0, config=cfg(2)))
    assert summarize(store, exp2).improvement_pct == pytest.approx(0.0)


def test_summary_without_a_working_baseline(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    exp = make_experiment()
    store.add_trial(exp, make_trial(1, None, "failed", baseline=True))
    store.add_trial(exp, make_trial(2, 10.0, config=cfg(2)))
    s = summarize(store, exp)
    assert s.baseline is None
    assert s.best is not None and s.best.number == 2
    assert s.improvement_pct is None
    assert summarize(store, make_experiment("empty")).best is None


# -- the scheduler ------------------------------------------------------------------------------

NAMES = ["mem", "ratio", "mode"]


def tps(config: Config) -> float:
    return 1000.0 * float(config["ratio"]) + (100.0 if config["mode"] == "b" else 0.0)


def outcome(config: Config, fail: bool = False) -> TrialOutcome:
    """What an agent would report, without running a system: tps is a function of the config."""
    if fail:
        return TrialOutcome(
            status="failed",
            error="it broke",
            log_excerpt="FATAL",
            timings={"total_s": 1.0},
            started_at=now(),
            finished_at=now(),
        )
    return TrialOutcome(
        status="ok",
        metrics={"tps": tps(config), "latency_avg_ms": 1.0},
        timings={"measure_s": 1.0, "total_s": 1.5},
        status_history=[("apply", "t0"), ("ok", "t1")],
        started_at=now(),
        finished_at=now(),
    )


@pytest.fixture
def space(toy_spec: Spec) -> Space:
    return Space(toy_spec, NAMES, MACHINE)


@pytest.fixture
def sched_exp(make_experiment: MakeExperiment) -> Callable[..., Experiment]:
    def make(
        budget: int = 5, parallelism: int = 1, direction: str = "maximize", **extra: Any
    ) -> Experiment:
        settings = {
            "knobs": NAMES,
            "duration_s": None,
            "budget": budget,
            "parallelism": parallelism,
            "machine": {"memory_bytes": MACHINE.memory_bytes, "cpus": MACHINE.cpus},
            **extra,
        }
        return make_experiment("exp", direction, optimizer="random", settings=settings)

    return make


def run_all(scheduler: Scheduler, fail: set[int] = frozenset(), agent: str = "a") -> int:  # type: ignore[assignment]
    """Lease and report until the tuner has nothing left; returns how many ran."""
    ran = 0
    while (lease := scheduler.lease(agent)) is not None:
        scheduler.report(
            agent, lease.trial_id, lease.lease_id, outcome(lease.config, lease.number in fail)
        )
        ran += 1
    return ran


def test_baseline_first_then_distinct_configs(
    store: Store, sched_exp: Callable[..., Experiment], space: Space
) -> None:
    exp = sched_exp(budget=5)
    scheduler = Scheduler(store)
    assert run_all(scheduler) == 5
    trials = store.trials(exp)
    assert [t.number for t in trials] == [1, 2, 3, 4, 5]
    assert trials[0].is_baseline and trials[0].config == space.default()
    assert not any(t.is_baseline for t in trials[1:])
    assert all(t.ok and t.objective == tps(t.config) and t.agent == "a" for t in trials)
    assert len({space.key(t.config) for t in trials}) == 5
    assert store.require_experiment("exp").status == "done"
    assert scheduler.lease("a") is None
    summary = summarize(store, exp)
    assert summary.trials == 5
    assert summary.best == best_trial(trials, "maximize")


def test_failed_trials_are_recorded_and_the_experiment_goes_on(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    exp = sched_exp(budget=4)
    run_all(Scheduler(store), fail={3})
    trials = store.trials(exp)
    assert [t.status for t in trials] == ["ok", "ok", "failed", "ok"]
    assert trials[2].error == "it broke" and trials[2].log_excerpt == "FATAL"
    assert trials[2].objective is None
    assert summarize(store, exp).failed == 1


def test_a_trial_without_the_objective_metric_counts_as_failed(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    exp = sched_exp(budget=1, direction="minimize")  # objective latency_p95_ms: not reported
    run_all(Scheduler(store))
    (trial,) = store.trials(exp)
    assert trial.status == "failed"
    assert trial.error is not None and "no 'latency_p95_ms'" in trial.error
    assert trial.metrics["tps"] > 0  # what was measured is kept


def test_a_failed_baseline_is_proposed_again(
    store: Store, sched_exp: Callable[..., Experiment], space: Space
) -> None:
    exp = sched_exp(budget=3)
    run_all(Scheduler(store), fail={1})
    trials = store.trials(exp)
    assert [(t.number, t.is_baseline, t.status) for t in trials][:2] == [
        (1, True, "failed"),
        (2, True, "ok"),
    ]
    assert trials[1].config == space.default()
    summary = summarize(store, exp)
    assert summary.baseline is not None and summary.baseline.number == 2


def test_a_larger_budget_resumes_where_it_stopped(
    store: Store, sched_exp: Callable[..., Experiment], space: Space
) -> None:
    exp = sched_exp(budget=3)
    scheduler = Scheduler(store)
    run_all(scheduler)
    first = store.trials(exp)
    store.update_experiment(exp, status="running", budget=6)
    assert run_all(Scheduler(store)) == 3  # a fresh scheduler: all state is in the store
    trials = store.trials(exp)
    assert trials[:3] == first
    assert sum(t.is_baseline for t in trials) == 1
    assert len({space.key(t.config) for t in trials}) == 6


def test_parallel_leases_get_distinct_configs_and_respect_parallelism(
    store: Store, sched_exp: Callable[..., Experiment], space: Space
) -> None:
    sched_exp(budget=8, parallelism=3)
    scheduler = Scheduler(store)
    leases = [scheduler.lease(agent) for agent in ("a", "b", "c")]
    assert all(lease is not None for lease in leases)
    held = [lease for lease in leases if lease is not None]
    assert len({lease.trial_id for lease in held}) == 3
    assert len({space.key(lease.config) for lease in held}) == 3
    assert scheduler.lease("d") is None  # three in flight already
    first = held[0]
    scheduler.report("a", first.trial_id, first.lease_id, outcome(first.config))
    assert scheduler.lease("d") is not None


def test_an_expired_lease_goes_to_another_agent_and_its_report_is_refused(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    exp = sched_exp(budget=1)
    scheduler = Scheduler(store, lease_s=0.3)
    lost = scheduler.lease("a")
    assert lost is not None
    time.sleep(0.4)
    # b's lease is long, so that b's steps below cannot outlast it on a loaded host.
    scheduler.lease_s = 60.0
    again = scheduler.lease("b")
    assert again is not None and again.trial_id == lost.trial_id
    assert again.lease_id != lost.lease_id
    with pytest.raises(LeaseConflict):
        scheduler.report("a", lost.trial_id, lost.lease_id, outcome(lost.config))
    with pytest.raises(LeaseConflict):  # b's lease, a's name: still not a's
        scheduler.report("a", again.trial_id, again.lease_id, outcome(again.config))
    scheduler.heartbeat("b", again.trial_id, again.lease_id)
    scheduler.report("b", again.trial_id, again.lease_id, outcome(again.config))
    (trial,) = store.trials(exp)
    assert trial.status == "ok" and trial.agent == "b" and trial.attempts == 2
    with pytest.raises(LeaseConflict):  # reported once; a second report is refused
        scheduler.report("b", again.trial_id, again.lease_id, outcome(again.config))


def test_a_released_trial_is_leased_again(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    sched_exp(budget=1)
    scheduler = Scheduler(store)
    lease = scheduler.lease("a")
    assert lease is not None
    scheduler.release("a", lease.trial_id, lease.lease_id)
    again = scheduler.lease("b")
    assert again is not None and again.trial_id == lease.trial_id


def test_heartbeats_extend_the_lease(store: Store, sched_exp: Callable[..., Experiment]) -> None:
    # Each beat comes 0.6 s after the last, well inside the 2 s lease even on a loaded
    # host; the four outlast the lease itself.
    sched_exp(budget=1, lease_s=2.0)
    scheduler = Scheduler(store)
    lease = scheduler.lease("a")
    assert lease is not None
    for _ in range(4):
        time.sleep(0.6)
        scheduler.heartbeat("a", lease.trial_id, lease.lease_id)
    assert scheduler.lease("b") is None  # 2.4 s later, still a's
    scheduler.report("a", lease.trial_id, lease.lease_id, outcome(lease.config))


def test_concurrent_schedulers_on_one_sqlite_file_never_share_a_trial(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    """Separate schedulers and engines, as separate processes would have: SQLite has no
    FOR UPDATE, so the store takes the write lock at BEGIN."""
    import threading

    sched_exp(budget=16, parallelism=16)
    schedulers = [Scheduler(Store(store.url)) for _ in range(16)]
    got: list[int] = []
    barrier = threading.Barrier(16)

    def take(i: int) -> None:
        barrier.wait()
        lease = schedulers[i].lease(f"agent-{i}")
        if lease is not None:
            got.append(lease.trial_id)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(set(got))
    assert len(got) >= 1


def test_a_safety_floor_is_a_share_of_the_baseline_in_either_direction() -> None:
    from autotune.tuner import safety_floor

    assert safety_floor(0.5, 1000.0, "maximize") == -500.0  # half the tps, as a loss
    assert safety_floor(0.5, 20.0, "minimize") == 40.0  # twice the latency
    assert safety_floor(0.0, 20.0, "minimize") == 20.0  # nothing worse than the baseline
    assert safety_floor(1.0, 1000.0, "maximize") is None
    assert safety_floor(None, 1000.0, "maximize") is None
    assert safety_floor(0.5, None, "maximize") is None
    assert safety_floor(0.5, 0.0, "maximize") is None

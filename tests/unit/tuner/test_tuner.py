"""Losses, best trials, summaries, and the tuning loop with a fake agent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from autotune.agent import TrialOutcome
from autotune.optimizers import RandomOptimizer
from autotune.space import Space
from autotune.spec import Config, Spec
from autotune.store import Experiment, Store, Trial, now
from autotune.tuner import Events, Tuner, TuningError, best_trial, loss_of, summarize
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


def test_summarize_maximize(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    exp = make_experiment("max", "maximize")
    store.add_trial(
        exp, make_trial(1, 100.0, baseline=True, timings={"total_s": 10.0, "measure_s": 8.0})
    )
    store.add_trial(exp, make_trial(2, 150.0, timings={"total_s": 10.0, "measure_s": 6.0}))
    store.add_trial(exp, make_trial(3, None, "failed", timings={"total_s": 4.0}))
    store.add_trial(exp, make_trial(4, 120.0, timings={"total_s": 6.0, "measure_s": 6.0}))
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
    store.add_trial(exp, make_trial(2, 15.0))
    store.add_trial(exp, make_trial(3, 30.0))
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
    store.add_trial(exp2, make_trial(2, 10.0))
    assert summarize(store, exp2).improvement_pct == pytest.approx(0.0)


def test_summary_without_a_working_baseline(
    store: Store, make_experiment: MakeExperiment, make_trial: MakeTrial
) -> None:
    exp = make_experiment()
    store.add_trial(exp, make_trial(1, None, "failed", baseline=True))
    store.add_trial(exp, make_trial(2, 10.0))
    s = summarize(store, exp)
    assert s.baseline is None
    assert s.best is not None and s.best.number == 2
    assert s.improvement_pct is None
    assert summarize(store, make_experiment("empty")).best is None


# -- the loop -----------------------------------------------------------------------------------


class FakeAgent:
    """Runs no system: the objective is a function of the config; chosen trials fail."""

    def __init__(self, objective: Callable[[Config], float], fail: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.objective = objective
        self.fail = set(fail)
        self.configs: list[Config] = []

    def run_trial(self, config: Config, phase: Callable[[str], None] = lambda _: None) -> Any:
        self.configs.append(dict(config))
        phase("measure")
        n = len(self.configs)
        if n in self.fail:
            return TrialOutcome(
                status="failed",
                error=f"trial {n} broke",
                log_excerpt="FATAL",
                timings={"total_s": 1.0},
                started_at=now(),
                finished_at=now(),
            )
        return TrialOutcome(
            status="ok",
            metrics={"tps": self.objective(config), "latency_avg_ms": 1.0},
            timings={"measure_s": 1.0, "total_s": 1.5},
            status_history=[("apply", "t0"), ("ok", "t1")],
            started_at=now(),
            finished_at=now(),
        )


class Recorder(Events):
    def __init__(self) -> None:
        self.started: list[tuple[int, bool]] = []
        self.phases: list[str] = []
        self.finished: list[int] = []

    def trial_started(self, number: int, config: Config, baseline: bool) -> None:
        self.started.append((number, baseline))

    def phase(self, name: str) -> None:
        self.phases.append(name)

    def trial_finished(self, trial: Trial, baseline: Trial | None) -> None:
        self.finished.append(trial.number)


NAMES = ["mem", "ratio", "mode"]


def tps(config: Config) -> float:
    return 1000.0 * float(config["ratio"]) + (100.0 if config["mode"] == "b" else 0.0)


@pytest.fixture
def space(toy_spec: Spec) -> Space:
    return Space(toy_spec, NAMES, MACHINE)


def tuner(store: Store, exp: Experiment, space: Space, agent: FakeAgent, **kw: Any) -> Tuner:
    return Tuner(store, exp, space, RandomOptimizer(space, seed=0), agent, **kw)  # type: ignore[arg-type]


def test_baseline_first_then_optimiser_configs(
    store: Store, make_experiment: MakeExperiment, space: Space
) -> None:
    exp = make_experiment()
    agent = FakeAgent(tps)
    events = Recorder()
    summary = tuner(store, exp, space, agent, events=events).run(5)
    trials = store.trials(exp)
    assert [t.number for t in trials] == [1, 2, 3, 4, 5]
    assert trials[0].is_baseline and trials[0].config == space.default()
    assert not any(t.is_baseline for t in trials[1:])
    assert all(t.ok and t.objective == tps(t.config) for t in trials)
    assert len({space.key(t.config) for t in trials}) == 5
    assert events.started == [(1, True), (2, False), (3, False), (4, False), (5, False)]
    assert events.finished == [1, 2, 3, 4, 5]
    assert "measure" in events.phases
    assert summary.trials == 5
    assert summary.baseline is not None and summary.baseline.number == 1
    assert summary.best == best_trial(trials, "maximize")


def test_failed_trials_are_recorded_and_the_session_goes_on(
    store: Store, make_experiment: MakeExperiment, space: Space
) -> None:
    exp = make_experiment()
    summary = tuner(store, exp, space, FakeAgent(tps, fail={3})).run(4)
    trials = store.trials(exp)
    assert [t.status for t in trials] == ["ok", "ok", "failed", "ok"]
    assert trials[2].error == "trial 3 broke"
    assert trials[2].log_excerpt == "FATAL"
    assert trials[2].objective is None
    assert summary.failed == 1


def test_a_trial_without_the_objective_metric_counts_as_failed(
    store: Store, make_experiment: MakeExperiment, space: Space
) -> None:
    exp = make_experiment("p95", "minimize")  # objective latency_p95_ms, which FakeAgent omits
    with pytest.raises(TuningError, match=r"baseline.*no 'latency_p95_ms'"):
        tuner(store, exp, space, FakeAgent(tps)).run(2)
    (trial,) = store.trials(exp)
    assert trial.status == "failed"
    assert trial.metrics["tps"] > 0  # what was measured is kept


def test_a_failed_baseline_stops_the_session(
    store: Store, make_experiment: MakeExperiment, space: Space
) -> None:
    exp = make_experiment()
    with pytest.raises(TuningError, match=r"baseline.*failed.*trial 1 broke"):
        tuner(store, exp, space, FakeAgent(tps, fail={1})).run(5)
    assert [t.number for t in store.trials(exp)] == [1]


def test_resuming_continues_where_the_session_stopped(
    store: Store, make_experiment: MakeExperiment, space: Space
) -> None:
    exp = make_experiment()
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    tuner(store, exp, space, FakeAgent(tps)).run(10, should_stop=stop_after_three)
    assert [t.number for t in store.trials(exp)] == [1, 2, 3]
    agent = FakeAgent(tps)
    fresh_optimizer = RandomOptimizer(space, seed=0)
    Tuner(store, exp, space, fresh_optimizer, agent).run(6)  # type: ignore[arg-type]
    trials = store.trials(exp)
    assert [t.number for t in trials] == [1, 2, 3, 4, 5, 6]
    assert sum(t.is_baseline for t in trials) == 1  # the baseline is not run again
    assert len(agent.configs) == 3
    assert len(fresh_optimizer.history_) == 6  # recorded trials were told again
    assert len({space.key(t.config) for t in trials}) == 6  # and not proposed twice


def test_a_finished_experiment_runs_nothing(
    store: Store, make_experiment: MakeExperiment, space: Space
) -> None:
    exp = make_experiment()
    tuner(store, exp, space, FakeAgent(tps)).run(2)
    agent = FakeAgent(tps)
    summary = tuner(store, exp, space, agent).run(2)
    assert agent.configs == []
    assert summary.trials == 2


def test_resuming_after_a_failed_baseline_runs_the_baseline_again(
    store: Store, make_experiment: MakeExperiment, space: Space
) -> None:
    """Once the cause is fixed, re-running the experiment needs a working baseline."""
    exp = make_experiment()
    with pytest.raises(TuningError):
        tuner(store, exp, space, FakeAgent(tps, fail={1})).run(4)
    agent = FakeAgent(tps)
    summary = tuner(store, exp, space, agent).run(4)
    assert agent.configs[0] == space.default()
    assert summary.baseline is not None and summary.baseline.ok

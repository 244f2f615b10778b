"""The experiment loop: baseline first, then ask the optimiser, run, record, tell.

Everything the loop learns goes to the store before the optimiser hears of
it, so a session that dies can be resumed by name and carries on where it
stopped, re-telling the recorded trials to a fresh optimiser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autotune.agent import Agent, TrialOutcome
from autotune.optimizers import Optimizer
from autotune.space import Space
from autotune.spec import Config
from autotune.store import Experiment, Store, Trial


class TuningError(RuntimeError):
    """The session cannot go on; the message says why."""


def loss_of(trial: Trial, direction: str) -> float | None:
    """What optimisers minimise: the objective, negated when it is to be maximised."""
    if not trial.ok or trial.objective is None:
        return None
    return -trial.objective if direction == "maximize" else trial.objective


@dataclass
class Summary:
    experiment: str
    objective_metric: str
    direction: str
    baseline: Trial | None
    best: Trial | None
    trials: int
    failed: int
    measure_s: float  # seconds spent measuring, over all trials
    trial_s: float  # wall seconds of all trials, apply to collect
    store_url: str

    @property
    def measure_share(self) -> float | None:
        """Share of trial wall time spent measuring."""
        return self.measure_s / self.trial_s if self.trial_s > 0 else None

    @property
    def improvement_pct(self) -> float | None:
        if self.baseline is None or self.best is None:
            return None
        base, best = self.baseline.objective, self.best.objective
        if base is None or best is None or base == 0:
            return None
        sign = 1 if self.direction == "maximize" else -1
        return sign * (best - base) / abs(base) * 100


def best_trial(trials: list[Trial], direction: str) -> Trial | None:
    ok = [t for t in trials if t.ok and t.objective is not None]
    if not ok:
        return None
    pick = max if direction == "maximize" else min
    return pick(ok, key=lambda t: t.objective or 0.0)


def summarize(store: Store, experiment: Experiment) -> Summary:
    trials = store.trials(experiment)
    baseline = next((t for t in trials if t.is_baseline and t.ok), None)
    total = sum(t.timings.get("total_s", 0.0) for t in trials)
    measured = sum(t.timings.get("measure_s", 0.0) for t in trials)
    return Summary(
        experiment=experiment.name,
        objective_metric=experiment.objective_metric,
        direction=experiment.direction,
        baseline=baseline,
        best=best_trial(trials, experiment.direction),
        trials=len(trials),
        failed=sum(1 for t in trials if not t.ok),
        measure_s=measured,
        trial_s=total,
        store_url=store.safe_url,
    )


class Events:
    """Hooks a front end implements to show progress; all optional."""

    def trial_started(self, number: int, config: Config, baseline: bool) -> None:
        pass

    def phase(self, name: str) -> None:
        pass

    def trial_finished(self, trial: Trial, baseline: Trial | None) -> None:
        pass


class Tuner:
    """Runs an experiment to ``n_trials`` recorded trials."""

    def __init__(
        self,
        store: Store,
        experiment: Experiment,
        space: Space,
        optimizer: Optimizer,
        agent: Agent,
        events: Events | None = None,
    ) -> None:
        self.store = store
        self.experiment = experiment
        self.space = space
        self.optimizer = optimizer
        self.agent = agent
        self.events = events or Events()
        self.measured_s = 0.0  # measuring time of the trials this tuner ran

    def _record(self, number: int, config: Config, outcome: TrialOutcome, baseline: bool) -> Trial:
        metric = self.experiment.objective_metric
        objective = outcome.metrics.get(metric) if outcome.status == "ok" else None
        status, error = outcome.status, outcome.error
        if status == "ok" and objective is None:
            status, error = "failed", f"the workload reported no {metric!r}"
        trial = Trial(
            number=number,
            config=dict(config),
            status=status,
            objective=objective,
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            is_baseline=baseline,
            metrics=outcome.metrics,
            timings=outcome.timings,
            status_history=outcome.status_history,
            not_applied=outcome.not_applied,
            error=error,
            log_excerpt=outcome.log_excerpt,
        )
        self.store.add_trial(self.experiment, trial)
        self.measured_s += trial.timings.get("measure_s", 0.0)
        self.optimizer.tell(trial.config, loss_of(trial, self.experiment.direction))
        return trial

    def run(self, n_trials: int, should_stop: Callable[[], bool] = lambda: False) -> Summary:
        trials = self.store.trials(self.experiment)
        for trial in trials:
            self.optimizer.tell(trial.config, loss_of(trial, self.experiment.direction))
        # A failed baseline (say, the server was down) is run again on resume.
        baseline = next((t for t in trials if t.is_baseline and t.ok), None)
        number = max((t.number for t in trials), default=0)
        while number < n_trials and not should_stop():
            number += 1
            is_baseline = baseline is None
            config: Config = self.space.default() if is_baseline else self.optimizer.ask(1)[0]
            self.events.trial_started(number, config, is_baseline)
            outcome = self.agent.run_trial(config, self.events.phase)
            trial = self._record(number, config, outcome, is_baseline)
            if is_baseline:
                baseline = trial
                if not trial.ok:
                    raise TuningError(
                        f"the baseline (default config) failed: {trial.error}"
                        + (f"\n{trial.log_excerpt}" if trial.log_excerpt else "")
                    )
            self.events.trial_finished(trial, baseline if baseline and baseline.ok else None)
        return summarize(self.store, self.experiment)

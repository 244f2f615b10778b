"""Reading an experiment's outcome: losses for optimisers, the best trial, summaries."""

from __future__ import annotations

from dataclasses import dataclass

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
    trials = store.trials(experiment, finished_only=True)
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

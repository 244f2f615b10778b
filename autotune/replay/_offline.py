"""Replay a recorded experiment offline: optimisers against a surrogate of its trials.

Comparing optimisers on the real system takes hours per run and is noisy.
A random forest fitted on an experiment's successful full-length trials
predicts the objective of any config in its space, so an optimiser can be
run against it in seconds. The forest only knows the region the trials
covered; its cross-validated R² says how far to trust a comparison.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autotune.bench.competitors import run_competitor
from autotune.bench.problems import Problem, fit_surrogate
from autotune.store import Experiment, Store, Trial
from autotune.tuner import TuningError, config_runs, experiment_space, summarize, usable

MIN_TRIALS = 10  # fewer, and the forest is a guess


@dataclass
class Surrogate:
    problem: Problem
    trials: int
    r2_cv: float | None  # 5-fold cross-validated R² of the forest, None below 10 trials
    noise_sd: float  # of the objective, from repeated runs of one config (0 if none)
    recorded_best: Trial  # the session's best, as `autotune best` and `experiments` name it
    recorded_best_predicted: float  # the forest's objective at the recorded best config
    recorded_best_value: float = math.nan  # its measured value: the median of its runs
    recorded_best_runs: int = 1


def _objective_sign(direction: str) -> float:
    """Loss = sign × objective, so that lower is better."""
    return -1.0 if direction == "maximize" else 1.0


def repeat_noise(trials: list[Trial]) -> float:
    """Pooled standard deviation of configs run more than once: the host's noise."""
    groups = [runs.values for runs in config_runs(trials) if runs.n >= 2]
    dof = sum(len(g) - 1 for g in groups)
    if dof == 0:
        return 0.0
    ss = sum(sum((v - statistics.fmean(g)) ** 2 for v in g) for g in groups)
    return math.sqrt(ss / dof)


def build_surrogate(
    store: Store, experiment: Experiment, noise_sd: float | None = None
) -> Surrogate:
    """Fit the forest; ``noise_sd`` None takes the noise seen between repeats."""
    space = experiment_space(experiment)
    trials = usable(store.trials(experiment, finished_only=True))
    if len(trials) < MIN_TRIALS:
        raise TuningError(
            f"experiment {experiment.name!r} has {len(trials)} successful full-length trials; "
            f"a replay needs at least {MIN_TRIALS}"
        )
    rows = [{"config": t.config, "objective": t.objective} for t in trials]
    model = fit_surrogate(space, rows)
    sign = _objective_sign(experiment.direction)

    def loss_many(configs: list[dict[str, Any]]) -> np.ndarray:
        return sign * np.asarray(model.predict(space.encode_many(configs)), dtype=float)

    r2 = _cv_r2(space.encode_many(t.config for t in trials), [t.objective for t in trials])
    noise = repeat_noise(trials) if noise_sd is None else noise_sd
    # One "best" everywhere: the summary's (the verification's best, else the config
    # with the best median over its runs), not the single luckiest run.
    summary = summarize(store, experiment)
    best = summary.best if summary.best is not None and summary.best.ok else None
    if best is None:
        best = min(trials, key=lambda t: sign * float(t.objective or 0.0))
    same = [t.objective for t in trials if t.config == best.config and t.objective is not None]
    value = statistics.median(same) if same else float(best.objective or math.nan)
    problem = Problem(
        name=f"replay:{experiment.name}",
        description=f"{experiment.name}: {experiment.objective_metric} from a random forest "
        f"fitted on {len(trials)} trials",
        space=space,
        objective=lambda config: float(loss_many([config])[0]),
        f_star_fn=lambda: math.nan,
        noise_sd=noise,
        f_star_exact=False,
    )
    return Surrogate(
        problem=problem,
        trials=len(trials),
        r2_cv=r2,
        noise_sd=noise,
        recorded_best=best,
        recorded_best_predicted=sign * problem.objective(best.config),
        recorded_best_value=value,
        recorded_best_runs=max(1, len(same)),
    )


def _cv_r2(X: np.ndarray, y: list[float | None]) -> float | None:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold, cross_val_score

    if len(y) < 10:
        return None
    model = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=0, n_jobs=1)
    folds = KFold(5, shuffle=True, random_state=0)
    return float(np.mean(cross_val_score(model, X, np.asarray(y, dtype=float), cv=folds)))


@dataclass
class ReplayRun:
    seed: int
    best: float  # the forest's objective at the config with the best observed value
    best_trial: int  # 1-based evaluation that found it
    # First evaluation of a config the forest puts at or past the recorded best. With
    # noise the incumbent (``curve``) may still be a worse config, as a tuner's would be.
    reached_recorded_at: int | None
    curve: list[float] = field(default_factory=list)  # best-so-far objective, per evaluation


def replay(
    surrogate: Surrogate,
    optimizer: str,
    trials: int,
    seeds: int,
    direction: str,
    progress: Callable[[int], None] = lambda seed: None,
) -> list[ReplayRun]:
    """Run ``optimizer`` for ``trials`` evaluations per seed; the baseline is the first."""
    sign = _objective_sign(direction)
    target = surrogate.recorded_best_predicted
    out = []
    for seed in range(seeds):
        progress(seed)
        evaluator = run_competitor(optimizer, surrogate.problem, seed, trials)
        curve: list[float] = []
        best_obs, best_true, best_at = math.inf, math.nan, 0
        reached = None
        for i, ev in enumerate(evaluator.evaluations, start=1):
            if ev.observed is not None and ev.true is not None and ev.observed < best_obs:
                best_obs, best_true, best_at = ev.observed, ev.true, i
            curve.append(sign * best_true if not math.isnan(best_true) else math.nan)
            if reached is None and ev.true is not None and ev.true <= sign * target:
                reached = i
        out.append(ReplayRun(seed, sign * best_true, best_at, reached, curve))
    return out


__all__ = ["ReplayRun", "Surrogate", "build_surrogate", "repeat_noise", "replay"]

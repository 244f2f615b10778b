"""Reading an experiment's outcome: losses for optimisers, the best trial, summaries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from autotune.store import Experiment, Store, Trial
from autotune.tuner._robust import RobustBest, robust_best
from autotune.tuner._verify import (
    Verification,
    VerifyPolicy,
    arms_of,
    summarize_verification,
    verify_batch,
    verify_policy,
    verify_runs,
)


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
    best: Trial | None  # the trial that found the best config (robust.best has all its runs)
    trials: int
    failed: int
    measure_s: float  # seconds spent measuring, over all trials
    trial_s: float  # wall seconds of all trials, apply to collect
    store_url: str
    robust: RobustBest | None = None  # the noise-aware best; None when nothing succeeded
    repeats: int = 0  # finished re-measurements among ``trials``
    short: int = 0  # finished low-fidelity trials among ``trials``
    verification: Verification | None = None  # the paired rounds after the search, if any
    verify_runs: int = 0  # finished verification runs (not counted in ``trials``)

    @property
    def verified(self) -> bool:
        """A verification ran and its best's CI lies above 1."""
        return self.verification is not None and self.verification.verified

    @property
    def measure_share(self) -> float | None:
        """Share of trial wall time spent measuring."""
        return self.measure_s / self.trial_s if self.trial_s > 0 else None

    @property
    def improvement_pct(self) -> float | None:
        """The best's change from the baseline, positive when better: medians when repeated."""
        if self.robust is not None:
            return self.robust.improvement_pct
        if self.baseline is None or self.best is None:
            return None
        base, best = self.baseline.objective, self.best.objective
        if base is None or best is None or base == 0:
            return None
        sign = 1 if self.direction == "maximize" else -1
        return sign * (best - base) / abs(base) * 100


def usable(trials: Iterable[Trial]) -> list[Trial]:
    """The search's successful full-length trials with an objective: the only ones whose
    numbers compare (a verification's runs stand apart, some over other knobs)."""
    return [t for t in trials if t.ok and t.full and t.searched and t.objective is not None]


def best_trial(trials: list[Trial], direction: str) -> Trial | None:
    """The best single full-length run; short (low-fidelity) runs are not comparable."""
    ok = usable(trials)
    if not ok:
        return None
    pick = max if direction == "maximize" else min
    return pick(ok, key=lambda t: t.objective or 0.0)


def summarize(store: Store, experiment: Experiment) -> Summary:
    return summary_of(
        experiment.name,
        experiment.objective_metric,
        experiment.direction,
        store.trials(experiment, finished_only=True),
        store.safe_url,
        verify_policy(experiment),
    )


def summary_of(
    name: str,
    metric: str,
    direction: str,
    trials: list[Trial],
    store_url: str,
    policy: VerifyPolicy | None = None,
) -> Summary:
    """The summary of finished ``trials``, wherever they came from (store or service).

    The search's trials give the noise-aware best (``robust``); when a
    verification ran after them, the best is its best, and the claim its paired
    ratio. ``policy`` only decides how the verification's stop is described.
    """
    trials = [t for t in trials if t.finished]
    batch = verify_batch(trials)
    verification = None
    if batch:
        verification = summarize_verification(
            arms_of(batch), verify_runs(batch), direction, policy or VerifyPolicy()
        )
    trials = [t for t in trials if t.searched]
    baseline = next((t for t in trials if t.is_baseline and t.ok and t.full), None)
    total = sum(t.timings.get("total_s", 0.0) for t in trials)
    measured = sum(t.timings.get("measure_s", 0.0) for t in trials)
    robust = robust_best(trials, direction)
    best = None if robust is None else robust.trial
    if verification is not None and verification.best is not None:
        label = verification.best.label
        best = next((t for t in trials if f"trial {t.number}" == label), best)
    return Summary(
        experiment=name,
        objective_metric=metric,
        direction=direction,
        baseline=baseline,
        best=best,
        trials=len(trials),
        failed=sum(1 for t in trials if not t.ok),
        measure_s=measured,
        trial_s=total,
        store_url=store_url,
        robust=robust,
        repeats=sum(1 for t in trials if t.repeat),
        short=sum(1 for t in trials if not t.full),
        verification=verification,
        verify_runs=len(batch),
    )

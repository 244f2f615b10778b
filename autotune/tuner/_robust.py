"""The noise-aware best: medians of repeated runs, a ratio to the baseline, and its CI.

A single run on a shared host can be 25% off. So the reported best is the
config with the best *median* among configs measured at least twice (the
racing phase makes sure the top ones are), compared with the baseline's
median. A bootstrap CI of that ratio says whether the gain is more than
noise. Only full-length (fidelity 1) successful trials count: a short
screening run is not comparable with a full one.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autotune.store import Trial

RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: the same trials always give the same CI
CONFIDENCE = 0.95
# A config is "unstable" when its runs disagree more than this; a gain smaller
# than its own spread is not one to deploy on.
MAX_CV = 0.10  # sample standard deviation / mean
MAX_RANGE = 0.25  # (max - min) / median


def config_key(config: dict[str, Any]) -> str:
    """Identity of a config across trials: repeats copy it exactly, as stored JSON."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ConfigRuns:
    """Every full-length successful run of one config."""

    trials: tuple[Trial, ...]  # by number; the first is the run that found it
    is_baseline: bool

    @property
    def first(self) -> Trial:
        return self.trials[0]

    @property
    def config(self) -> dict[str, Any]:
        return self.first.config

    @property
    def values(self) -> list[float]:
        return [float(t.objective) for t in self.trials if t.objective is not None]

    @property
    def n(self) -> int:
        return len(self.trials)

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def cv(self) -> float | None:
        """Coefficient of variation (sample std / |mean|); None below two runs."""
        values = self.values
        mean = statistics.fmean(values)
        if len(values) < 2 or mean == 0:
            return None
        return statistics.stdev(values) / abs(mean)

    @property
    def spread(self) -> float | None:
        """(max - min) / |median|; None below two runs."""
        values = self.values
        if len(values) < 2 or self.median == 0:
            return None
        return (max(values) - min(values)) / abs(self.median)

    @property
    def unstable(self) -> bool:
        cv, spread = self.cv, self.spread
        return (cv is not None and cv > MAX_CV) or (spread is not None and spread > MAX_RANGE)


def config_runs(trials: list[Trial]) -> list[ConfigRuns]:
    """The search's full-length ok trials grouped by config, in order of each config's
    first trial (a verification's runs are summarised on their own, paired)."""
    groups: dict[str, list[Trial]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.ok and trial.full and trial.searched and trial.objective is not None:
            groups.setdefault(config_key(trial.config), []).append(trial)
    return [
        ConfigRuns(tuple(group), is_baseline=any(t.is_baseline for t in group))
        for group in groups.values()
    ]


def oriented_ratio(best: float, baseline: float, direction: str) -> float | None:
    """best vs baseline as a factor where > 1 is better, for either direction."""
    if best <= 0 or baseline <= 0:
        return None  # a ratio of non-positive objectives means nothing
    return best / baseline if direction == "maximize" else baseline / best


def bootstrap_ci(
    best: list[float],
    baseline: list[float],
    direction: str,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """95% percentile-bootstrap CI of the oriented ratio of medians.

    Each group is resampled on its own (they are independent runs), so both
    the best's and the baseline's noise widen the interval.
    """
    a, b = np.asarray(best, dtype=float), np.asarray(baseline, dtype=float)
    if len(a) < 2 or len(b) < 2 or (a <= 0).any() or (b <= 0).any():
        return None
    rng = np.random.default_rng(seed)
    med_a = np.median(rng.choice(a, size=(resamples, len(a))), axis=1)
    med_b = np.median(rng.choice(b, size=(resamples, len(b))), axis=1)
    ratios = med_a / med_b if direction == "maximize" else med_b / med_a
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ratio_ci(
    values: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    higher_is_better: bool = True,
) -> tuple[float, float, float]:
    """(ratio of medians, CI low, CI high) for two sets of runs, NaNs (failed runs) dropped;
    all NaN when undefined. The ratio is oriented as in ``oriented_ratio``."""
    direction = "maximize" if higher_is_better else "minimize"
    a = [float(v) for v in values if not math.isnan(v)]
    b = [float(v) for v in baseline if not math.isnan(v)]
    ratio = (
        oriented_ratio(statistics.median(a), statistics.median(b), direction) if a and b else None
    )
    ci = bootstrap_ci(a, b, direction)
    if ratio is None or ci is None:
        return (math.nan if ratio is None else ratio), math.nan, math.nan
    return ratio, ci[0], ci[1]


def paired_ratio_ci(
    values: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    higher_is_better: bool = True,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """(median of per-pair ratios, CI low, CI high) for runs measured in pairs.

    ``values[i]`` and ``baseline[i]`` ran in the same round of an interleaved
    comparison, so their ratio cancels the host's drift between rounds, which
    the unpaired ``bootstrap_ratio_ci`` counts as noise. Pairs with a failed
    (NaN) or non-positive run are dropped; all NaN below two pairs. The ratio is
    oriented as in ``oriented_ratio``; the bootstrap resamples pairs.
    """
    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired runs need equal lengths, got {len(a)} and {len(b)}")
    keep = ~(np.isnan(a) | np.isnan(b)) & (a > 0) & (b > 0)
    logs = np.log(a[keep] / b[keep]) * (1.0 if higher_is_better else -1.0)
    if len(logs) < 2:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(logs, size=(resamples, len(logs))), axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(np.exp(np.median(logs))), float(np.exp(low)), float(np.exp(high))


@dataclass(frozen=True)
class RobustBest:
    """The reported best config and how sure we are of it."""

    best: ConfigRuns
    baseline: ConfigRuns | None
    direction: str
    confirmed: bool  # measured at least twice; else the best single run
    ratio: float | None  # best median vs baseline median, > 1 is better
    ci: tuple[float, float] | None  # 95% bootstrap CI of ratio; None below 2 runs each
    unstable: tuple[ConfigRuns, ...]  # every config whose repeats disagree too much

    @property
    def significant(self) -> bool:
        """The CI excludes 1: better (or worse) than the baseline beyond the noise seen."""
        return self.ci is not None and (self.ci[0] > 1 or self.ci[1] < 1)

    @property
    def trial(self) -> Trial:
        """The trial that found the best config; its number names the config."""
        return self.best.first

    @property
    def improvement_pct(self) -> float | None:
        """The median's change from the baseline's, positive when better."""
        if self.baseline is None:
            return None
        base, best = self.baseline.median, self.best.median
        if base == 0:
            return None
        sign = 1 if self.direction == "maximize" else -1
        return sign * (best - base) / abs(base) * 100

    def to_json(self) -> dict[str, Any]:
        return {
            "trial": self.trial.number,
            "runs": self.best.n,
            "trials": [t.number for t in self.best.trials],
            "values": self.best.values,
            "median": self.best.median,
            "confirmed": self.confirmed,
            "baseline_median": None if self.baseline is None else self.baseline.median,
            "baseline_runs": None if self.baseline is None else self.baseline.n,
            "ratio": self.ratio,
            "ratio_ci": None if self.ci is None else list(self.ci),
            "significant": self.significant,
            "unstable": self.best.unstable,
            "cv": self.best.cv,
            "spread": self.best.spread,
            "unstable_trials": [g.first.number for g in self.unstable],
        }


def robust_best(trials: list[Trial], direction: str) -> RobustBest | None:
    """The best config by median over its repeats (see the module's docstring); None if
    no full-length trial succeeded."""
    groups = config_runs(trials)
    if not groups:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    baseline = next((g for g in groups if g.is_baseline), None)
    repeated = [g for g in groups if g.n >= 2]
    confirmed = bool(repeated)
    # Ties go to the earlier config: the order of groups is that of their first trials.
    best = max(repeated or groups, key=lambda g: sign * g.median)
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    if baseline is not None:
        ratio = oriented_ratio(best.median, baseline.median, direction)
        if best is not baseline and confirmed:
            ci = bootstrap_ci(best.values, baseline.values, direction)
    unstable = tuple(g for g in groups if g.unstable)
    return RobustBest(best, baseline, direction, confirmed, ratio, ci, unstable)


def describe(rb: RobustBest, metric: str) -> str:
    """One plain line for people: which trial, how many runs, and whether it is real.

    e.g. "trial 7 (3 runs), median 3320 tps, 1.09× baseline (95% CI 1.03–1.15), significant"
    """
    runs = f"{rb.best.n} run{'s' if rb.best.n != 1 else ''}"
    if not rb.confirmed:
        runs = "single run, not confirmed"
    value = "median" if rb.best.n > 1 else "value"
    head = f"trial {rb.trial.number} ({runs}), {value} {rb.best.median:.6g} {metric}"
    if rb.best.is_baseline:
        return f"{head}: the baseline; no config beat it"
    if rb.ratio is None:
        return head + ("" if rb.baseline is None else ", no ratio to the baseline")
    text = f"{head}, {rb.ratio:.3g}× baseline"
    if rb.ci is not None:
        text += f" (95% CI {rb.ci[0]:.3g}–{rb.ci[1]:.3g}), "
        if not rb.significant:
            text += "not significant"
        elif rb.ci[0] > 1:
            text += "significant"
        else:
            text += "significantly worse"
    elif rb.confirmed and rb.baseline is not None and rb.baseline.n < 2:
        text += ", no CI: the baseline ran once"
    if rb.best.unstable:
        text += ", unstable"
    return text


def unstable_line(rb: RobustBest) -> str | None:
    """Which configs' repeats disagree (see MAX_CV, MAX_RANGE), or None."""
    if not rb.unstable:
        return None
    parts = []
    for g in rb.unstable:
        cv, spread = g.cv or 0.0, g.spread or 0.0
        parts.append(f"trial {g.first.number} ({g.n} runs, cv {cv:.2f}, range {spread:.0%})")
    return "unstable: " + ", ".join(parts)


__all__ = [
    "MAX_CV",
    "MAX_RANGE",
    "ConfigRuns",
    "RobustBest",
    "bootstrap_ci",
    "bootstrap_ratio_ci",
    "config_key",
    "config_runs",
    "describe",
    "oriented_ratio",
    "paired_ratio_ci",
    "robust_best",
    "unstable_line",
]

"""The matrices an analysis works on, built from an experiment's stored trials.

Only finished, ok, full-length trials enter: a failed trial has no objective and
a short one is not comparable. Knob columns come from the experiment's own space
(``Space.encode``), so a log-scale knob is log-scaled, an enum is one-hot and a
special value such as -1 has its own indicator, exactly as the optimisers see
them; each column remembers the knob it belongs to, so rankings are per knob.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autotune.space import Space
from autotune.store import Experiment, Trial
from autotune.tuner import TuningError, loss_of

MIN_TRIALS = 6
"""Fewer rows than this cannot say anything about a handful of knobs."""


@dataclass(frozen=True)
class Dataset:
    """One row per usable trial: knob features, the loss (lower is better), metrics."""

    knobs: list[str]  # the tuned knobs, in the space's order
    features: np.ndarray  # (trials, columns), the space's model encoding
    columns: list[str]  # a name per feature column: "knob", "knob=value"
    owners: list[str]  # the knob each column belongs to
    loss: np.ndarray  # (trials,)
    metric_names: list[str]  # every metric any usable trial has, sorted
    metrics: np.ndarray  # (trials, metrics); NaN where a trial lacks one
    trials: list[int]  # trial numbers, one per row

    @property
    def internal(self) -> list[str]:
        """Internal metrics (``pg.*``, ``host.*``): every name with a dot."""
        return [name for name in self.metric_names if is_internal(name)]

    @property
    def workload(self) -> list[str]:
        """What the benchmark reports (tps, latencies): names without a dot."""
        return [name for name in self.metric_names if not is_internal(name)]

    def metric_matrix(self, names: list[str]) -> np.ndarray:
        index = {name: i for i, name in enumerate(self.metric_names)}
        return self.metrics[:, [index[name] for name in names]]


def is_internal(metric: str) -> bool:
    return "." in metric


def feature_columns(space: Space) -> tuple[list[str], list[str]]:
    """Names and owning knobs of ``space.encode``'s columns, in its order."""
    columns: list[str] = []
    owners: list[str] = []
    for knob in space.knobs:
        if knob.type == "enum":
            names = [f"{knob.name}={value}" for value in knob.values]
        elif knob.numeric:
            names = [knob.name, *(f"{knob.name}={value}" for value in knob.special)]
        else:
            names = [knob.name]
        columns.extend(names)
        owners.extend([knob.name] * len(names))
    if len(columns) != space.n_features:  # the space's layout changed under us
        raise AssertionError(f"{len(columns)} column names for {space.n_features} features")
    return columns, owners


def usable(trials: list[Trial], direction: str) -> list[Trial]:
    """The search's finished ok trials at full fidelity with an objective (a verification's
    runs repeat a few configs, some with knobs outside the space)."""
    return [
        t for t in trials if t.ok and t.full and t.searched and loss_of(t, direction) is not None
    ]


def build_dataset(experiment: Experiment, space: Space, trials: list[Trial]) -> Dataset:
    """The experiment's usable trials as matrices; refuses when there are too few."""
    if not space.knobs:
        raise TuningError(f"experiment {experiment.name!r} tunes no knobs; nothing to analyze")
    rows: list[np.ndarray] = []
    losses: list[float] = []
    kept: list[Trial] = []
    defaults = space.default()
    for trial in usable(trials, experiment.direction):
        config = {**defaults, **{k: v for k, v in trial.config.items() if k in defaults}}
        try:
            row = space.encode(config)
        except (ValueError, TypeError, KeyError):
            continue  # a value the recorded spec no longer accepts: not comparable
        loss = loss_of(trial, experiment.direction)
        assert loss is not None
        rows.append(row)
        losses.append(loss)
        kept.append(trial)
    if len(kept) < MIN_TRIALS:
        raise TuningError(
            f"experiment {experiment.name!r} has {len(kept)} finished full-length ok trials; "
            f"analyze needs at least {MIN_TRIALS}"
        )
    columns, owners = feature_columns(space)
    names = sorted({m for t in kept for m in t.metrics})
    metrics = np.array(
        [[_number(t.metrics.get(m)) for m in names] for t in kept], dtype=float
    ).reshape(len(kept), len(names))
    return Dataset(
        knobs=list(space.names),
        features=np.vstack(rows),
        columns=columns,
        owners=owners,
        loss=np.array(losses, dtype=float),
        metric_names=names,
        metrics=metrics,
        trials=[t.number for t in kept],
    )


def _number(value: float | None) -> float:
    if value is None or not math.isfinite(value):
        return math.nan
    return float(value)

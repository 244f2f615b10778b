"""Warm start: seed a new experiment's optimiser with a past experiment's trials.

Which past experiment: one named by the user, or, with ``auto``, the one whose
workload looks most like this one, OtterTune's workload mapping (Van Aken et
al., SIGMOD 2017, §5): for each candidate, a model of its internal metrics
as a function of the knobs predicts the metrics at this experiment's configs,
and the candidate whose predictions are closest to what was measured here
wins. Metrics are compared as per-second rates, standardised by the
candidate's spread, so a longer run or a bigger machine does not look like a
different workload.

The past trials enter the optimiser before this experiment's own, with their
objective scaled by the ratio of the two baselines: the shape of the response
surface transfers between similar workloads more reliably than its level.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autotune.space import Space
from autotune.spec import Config, KnobValueError
from autotune.store import Experiment, Store, Trial
from autotune.systems import known_gauges
from autotune.tuner._tuner import TuningError, usable

log = logging.getLogger("autotune.tuner")

MIN_SOURCE_TRIALS = 6  # a past experiment with fewer ok trials teaches nothing
MIN_METRICS = 3  # mapping on fewer internal metrics is guessing
MAX_GAP = 3.0  # a metric's standardised gap counts at most this much


def gauges() -> frozenset[str]:
    """Metric names that are levels, not counters: not divided by the run's length."""
    return known_gauges()


def rates(trial: Trial, levels: frozenset[str]) -> dict[str, float]:
    """A trial's internal metrics (names with a dot) per measured second; levels as they are."""
    seconds = trial.timings.get("measure_s") or 0.0
    out = {}
    for name, value in trial.metrics.items():
        if "." not in name or not math.isfinite(value):
            continue
        if name in levels:
            out[name] = value
        elif seconds > 0:
            out[name] = value / seconds
    return out


def baseline_value(trials: Sequence[Trial]) -> float | None:
    """The median of the baseline's successful full-length runs."""
    values = [float(t.objective) for t in usable(trials) if t.is_baseline and t.objective]
    return statistics.median(values) if values else None


def carry_config(config: Config, space: Space) -> Config | None:
    """A past config in this space: shared knobs kept (clipped to this spec's bounds),
    the others at their defaults; None when it breaks a constraint here."""
    out = space.default()
    for knob in space.knobs:
        if knob.name not in config:
            continue
        try:
            out[knob.name] = knob.validate(config[knob.name])
        except KnobValueError:
            value = config[knob.name]
            if not knob.numeric or not isinstance(value, int | float) or isinstance(value, bool):
                continue  # an enum value this spec lacks: keep the default
            low = -math.inf if knob.min is None else knob.min
            high = math.inf if knob.max is None else knob.max
            try:
                out[knob.name] = knob.validate(type(value)(min(max(value, low), high)))
            except (KnobValueError, ValueError, OverflowError):
                continue
    return out if space.is_valid(out) else None


@dataclass(frozen=True)
class Candidate:
    experiment: Experiment
    distance: float | None  # None when it could not be scored
    metrics: int  # how many metrics the score used


def _candidates(store: Store, experiment: Experiment) -> list[Experiment]:
    """Past experiments that can seed this one: same system and objective, shared knobs."""
    knobs = set(experiment.settings.get("knobs", []))
    out = []
    for other in store.experiments():
        if other.id == experiment.id or other.system != experiment.system:
            continue
        if (other.objective_metric, other.direction) != (
            experiment.objective_metric,
            experiment.direction,
        ):
            continue
        if not knobs & set(other.settings.get("knobs", [])):
            continue
        out.append(other)
    return out


def map_workload(
    store: Store, experiment: Experiment, space_of: Any, trials: Sequence[Trial]
) -> list[Candidate]:
    """Candidates by distance of their predicted metrics from this experiment's, closest first.

    ``space_of(experiment)`` gives an experiment's space. A candidate's model is a
    random forest from its knob encoding to its standardised metric rates: the
    representatives of its latest analysis when it has one, else every metric
    both experiments measured that varies in the candidate.
    """
    from sklearn.ensemble import RandomForestRegressor

    levels = gauges()
    mine = usable(trials)
    my_rates = [rates(t, levels) for t in mine]
    scored: list[Candidate] = []
    for other in _candidates(store, experiment):
        theirs = usable(store.trials(other, finished_only=True))
        if len(theirs) < MIN_SOURCE_TRIALS:
            continue
        their_rates = [rates(t, levels) for t in theirs]
        names = (
            sorted(set.intersection(*(set(r) for r in their_rates), *(set(r) for r in my_rates)))
            if my_rates and their_rates
            else []
        )
        Y = np.array([[r[n] for n in names] for r in their_rates], dtype=float)
        keep = [i for i in range(len(names)) if Y.shape[0] and np.std(Y[:, i]) > 0] if names else []
        if len(keep) < MIN_METRICS:
            scored.append(Candidate(other, None, len(keep)))
            continue
        names = [names[i] for i in keep]
        Y = Y[:, keep]
        pruned = [i for i, n in enumerate(names) if n in _representatives(store, other)]
        if len(pruned) >= MIN_METRICS:  # OtterTune maps on the pruned metrics only
            names = [names[i] for i in pruned]
            Y = Y[:, pruned]
        mean = Y.mean(axis=0)
        # A metric (nearly) constant in the candidate would turn any difference into a huge
        # z-score and decide the mapping alone: its spread is floored at 10% of its level,
        # and each metric's standardised gap is capped (OtterTune bins into deciles).
        std = np.maximum(Y.std(axis=0), np.maximum(0.1 * np.abs(mean), 1e-12))
        space = space_of(other)
        X = space.encode_many(t.config for t in theirs)
        model = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=0)
        model.fit(X, (Y - mean) / std)
        targets = []
        for trial in mine:
            config = carry_config(trial.config, space)
            if config is not None:
                targets.append((config, trial))
        if not targets:
            scored.append(Candidate(other, None, len(names)))
            continue
        predicted = model.predict(space.encode_many(c for c, _ in targets)).reshape(
            len(targets), -1
        )
        observed = np.array([[rates(t, levels)[n] for n in names] for _, t in targets], dtype=float)
        observed = (observed - mean) / std
        gap = np.clip(predicted - observed, -MAX_GAP, MAX_GAP)
        distance = float(np.mean(np.sqrt(np.mean(gap**2, axis=1))))
        scored.append(Candidate(other, distance, len(names)))
    return sorted(scored, key=lambda c: (c.distance is None, c.distance or 0.0))


def _representatives(store: Store, experiment: Experiment) -> set[str]:
    """The pruned metric set of the experiment's latest ``autotune analyze``, if any."""
    found = store.analyses(experiment, "analyze")
    if not found:
        return set()
    metrics = found[-1].result.get("metrics") or {}
    return {str(n) for n in metrics.get("representatives") or []}


@dataclass(frozen=True)
class WarmStart:
    source: str
    observations: list[tuple[Config, float]]  # (config in this space, loss)
    scale: float
    distance: float | None = None


def warm_observations(
    store: Store,
    source: Experiment,
    space: Space,
    direction: str,
    my_baseline: float,
    through: int | None = None,
    scale: float | None = None,
) -> tuple[list[tuple[Config, float]], float]:
    """The source's usable trials as (config, loss) in this space, scaled to this baseline.

    ``through`` keeps only the source's trials numbered up to it, and ``scale``
    replaces the ratio of baselines: both as recorded when the warm start was
    decided, so that a source still running, or this experiment's baseline
    re-measured since, does not change what a rebuilt optimiser is told.
    """
    if not set(space.names) & set(source.settings.get("knobs", [])):
        return [], 1.0  # nothing in common: every carried config would be the default
    theirs = [
        t
        for t in store.trials(source, finished_only=True)
        if through is None or t.number <= through
    ]
    if scale is None:
        their_baseline = baseline_value(theirs)
        scale = my_baseline / their_baseline if their_baseline else 1.0
    sign = -1.0 if direction == "maximize" else 1.0
    out = []
    for trial in usable(theirs):
        config = carry_config(trial.config, space)
        if config is None:
            continue
        out.append((config, sign * float(trial.objective or 0.0) * scale))
    return out, scale


def resolve_warm_start(
    store: Store, experiment: Experiment, trials: Sequence[Trial], space: Space, space_of: Any
) -> WarmStart | None:
    """The warm start to use now, or None (none asked, or not yet: the baseline comes first).

    The source is decided once, then kept in the experiment's settings
    (``warm_start_from``), so a resumed or restarted tuner seeds the same way.
    """
    asked = experiment.settings.get("warm_start") or "none"
    if asked == "none":
        return None
    mine = baseline_value(trials)
    if mine is None:
        return None  # scaling needs this experiment's baseline
    decided = experiment.settings.get("warm_start_from")
    distance = through = scale = None
    if isinstance(decided, dict):
        if not decided.get("experiment"):
            return None  # auto found nothing similar; that stays decided
        name, distance = str(decided["experiment"]), decided.get("distance")
        through, scale = decided.get("through"), decided.get("scale")
    elif asked == "auto":
        # Mapping needs each trial's internal metrics and timings, which the scheduler's
        # cheap history leaves out: read this experiment's finished trials whole, once.
        measured = store.trials(experiment, finished_only=True)
        ranked = [
            c for c in map_workload(store, experiment, space_of, measured) if c.distance is not None
        ]
        if not ranked:
            reason = {"experiment": None, "reason": "no similar past experiment"}
            store.update_experiment(experiment, settings={"warm_start_from": reason})
            log.info("experiment %s: no past experiment to warm-start from", experiment.name)
            return None
        name, distance = ranked[0].experiment.name, ranked[0].distance
    else:
        name = str(asked)
    source = store.experiment(name)
    if source is None:
        raise TuningError(f"--warm-start: no experiment {name!r} in {store.safe_url}")
    if through is None:
        # The source's trials finished by now; one still running adds more later.
        finished = store.trials(source, finished_only=True)
        through = max((t.number for t in finished), default=0)
    observations, scale = warm_observations(
        store, source, space, experiment.direction, mine, through=through, scale=scale
    )
    if not isinstance(decided, dict):
        store.update_experiment(
            experiment,
            settings={
                "warm_start_from": {
                    "experiment": name,
                    "distance": distance,
                    "scale": scale,
                    "observations": len(observations),
                    "through": through,
                }
            },
        )
    return WarmStart(name, observations, scale, distance)


def check_warm_start(store: Store, value: str | None, system: str, objective: str) -> str:
    """Validate ``--warm-start`` up front: none, auto, or a usable experiment in this store."""
    if value is None or value == "none":
        return "none"
    if value == "auto":
        return value
    source = store.experiment(value)
    if source is None:
        known = ", ".join(e.name for e in store.experiments()) or "none"
        raise TuningError(
            f"--warm-start: no experiment {value!r} in {store.safe_url} "
            f"(use auto, none, or one of: {known})"
        )
    if source.system != system or source.objective_metric != objective:
        raise TuningError(
            f"--warm-start: experiment {value!r} tuned {source.system} for "
            f"{source.objective_metric}, not {system} for {objective}"
        )
    n = len(usable(store.trials(source, finished_only=True)))
    if n < MIN_SOURCE_TRIALS:
        raise TuningError(
            f"--warm-start: experiment {value!r} has {n} successful full-length trials; "
            f"a warm start needs at least {MIN_SOURCE_TRIALS}"
        )
    return value


__all__ = [
    "Candidate",
    "WarmStart",
    "carry_config",
    "check_warm_start",
    "map_workload",
    "resolve_warm_start",
    "warm_observations",
]

"""Exploration that does not hurt: the floor below which the search will not knowingly go.

A DBA tuning a live server cannot afford trials at a tenth of its throughput.
The session's ``safety_margin`` m sets a floor at (1 − m) of the baseline's
performance: tps × (1 − m) when maximising, latency ÷ (1 − m) when minimising
(m = 0.5: half the throughput, or twice the latency). The optimiser is told it
as a loss (``Optimizer.plan_safety``) and keeps away from configs its model
predicts may fall past it, as safe Bayesian optimisation and OnlineTune do.
m = 1 puts the floor at zero throughput (infinite latency): no floor.
"""

from __future__ import annotations

from collections.abc import Sequence

from autotune.store import Experiment, Trial
from autotune.tuner._warm import baseline_value

SAFETY_MARGIN = 1.0
"""The default: no floor. A margin of 0.5 cut trials below half the baseline from
3.3 to 0.55 per 30 on the surrogate where they happen, but cost 0.03 of the best
found on another, and the rule written before that run (experiments/bench_safety.py,
results/safety.md) keeps it off by default then. ``--safety-margin 0.5`` turns it on."""


def safety_margin(experiment: Experiment) -> float | None:
    """The experiment's margin; None for an experiment from before margins (no floor)."""
    value = experiment.settings.get("safety_margin")
    return None if value is None else float(value)


def safety_floor(margin: float | None, baseline: float | None, direction: str) -> float | None:
    """The floor as a loss (what optimisers minimise), or None when there is none:
    no margin, a margin of 1, or no positive baseline yet."""
    if margin is None or margin >= 1 or baseline is None or baseline <= 0:
        return None
    if direction == "maximize":
        return -(1.0 - margin) * baseline
    return baseline / (1.0 - margin)


def experiment_floor(experiment: Experiment, trials: Sequence[Trial]) -> float | None:
    """``safety_floor`` for an experiment, from the median of its baseline's runs."""
    return safety_floor(safety_margin(experiment), baseline_value(trials), experiment.direction)

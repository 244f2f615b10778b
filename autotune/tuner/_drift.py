"""Drift controls: the default re-measured during the search, so trials compare across time.

The host's speed drifts by ±25% within minutes, so a trial's raw result is
partly the config and partly when it ran. With ``controls: N`` in an
experiment's settings, every N search trials the scheduler runs the default
config again (a ``control`` trial). Each later trial's objective is then read
relative to the latest control before it, scaled back to the baseline's level:

    corrected = raw × baseline / control_before

so the optimiser compares configs as if all had run at the baseline's time.
The store keeps every raw objective; corrected values are derived again from
the trials whenever needed, never stored in their place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from autotune.store import Trial


def control_levels(trials: Sequence[Trial]) -> list[tuple[int, float]]:
    """(trial number, value) of the baseline's first run and every ok control run, in
    number order: the host's level at those moments."""
    levels: list[tuple[int, float]] = []
    for t in sorted(trials, key=lambda t: t.number):
        if not (t.ok and t.full and t.objective and t.objective > 0):
            continue
        if t.phase == "control" or (t.searched and t.is_baseline and not levels):
            levels.append((t.number, float(t.objective)))
    return levels


def corrected_objectives(trials: Sequence[Trial]) -> dict[int, float]:
    """Each ok search trial's objective relative to the latest control before it, at the
    baseline's level; empty when no control has run (nothing to correct by)."""
    levels = control_levels(trials)
    if len(levels) < 2:
        return {}
    reference = levels[0][1]
    out = {}
    for t in trials:
        if not (t.ok and t.searched and t.objective is not None):
            continue
        before = [value for number, value in levels if number < t.number]
        level = before[-1] if before else reference
        out[t.number] = float(t.objective) * reference / level
    return out


def with_corrected(trials: Sequence[Trial]) -> list[Trial]:
    """``trials`` with each search trial's objective corrected for drift (a copy; the
    controls themselves are left out)."""
    corrected = corrected_objectives(trials)
    return [
        dataclasses.replace(t, objective=corrected.get(t.number, t.objective))
        for t in trials
        if t.phase != "control"
    ]


def control_due(trials: Sequence[Trial], every: int) -> bool:
    """Whether the next search slot should run the default again: ``every`` search
    trials since the last control (or the baseline)."""
    last = max(
        (t.number for t in trials if t.phase == "control" or (t.searched and t.is_baseline)),
        default=None,
    )
    if last is None:
        return False
    return sum(1 for t in trials if t.searched and t.number > last) >= every


__all__ = ["control_due", "control_levels", "corrected_objectives", "with_corrected"]

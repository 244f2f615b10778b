"""Racing the incumbent: which config the next re-measurement goes to.

The last ``repeats`` trials of an experiment's budget re-measure instead of
search, so the reported best is a median over several runs rather than one
lucky draw. The contenders are the best few configs the search found, plus
the baseline (the reference every gain is a ratio to). A small bandit spends
the repeats:

1. every contender, the baseline included, gets one repeat first, so each
   has a spread and the ratio to the baseline can be estimated at all;
2. then each repeat goes to the non-baseline contender whose loss could
   plausibly be lowest: the smallest optimistic bound mean - c * s / sqrt(n),
   with s the standard deviation pooled over all contenders (one or two runs
   each give no usable spread of their own);
3. but the baseline goes first whenever it has fewer measurements than that
   leader, up to BASELINE_MAX: a ratio is only as sure as its denominator.

Repeats still in flight count as measurements (of unknown value), so agents
running in parallel spread over contenders instead of all piling onto one.
Everything is deterministic: ties go to the better-ranked contender.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autotune.store import Trial
from autotune.tuner._robust import config_key

CONTENDERS = 3  # best distinct configs raced besides the baseline
BASELINE_MAX = 3  # the baseline's measurements at most (first run included)
EXPLORATION = 1.0  # c in mean - c * s / sqrt(n)


@dataclass
class Contender:
    config: dict[str, Any]
    is_baseline: bool
    losses: list[float] = field(default_factory=list)  # finished ok full-length runs
    attempts: int = 0  # ok runs, failed repeats, and runs still in flight

    @property
    def mean(self) -> float:
        return statistics.fmean(self.losses) if self.losses else math.inf

    def bound(self, pooled_std: float) -> float:
        """Optimistic (lower) bound on the loss: small n or large noise keeps it low."""
        return self.mean - EXPLORATION * pooled_std / math.sqrt(max(self.attempts, 1))


def _loss(trial: Trial, direction: str) -> float | None:
    if not trial.ok or trial.objective is None:
        return None
    return -trial.objective if direction == "maximize" else trial.objective


def contenders(trials: Sequence[Trial], direction: str, k: int = CONTENDERS) -> list[Contender]:
    """The baseline first, then the ``k`` best distinct configs by their search-phase run.

    Ranking uses non-repeat runs only, so repeats (which might come out low)
    do not reshuffle the field mid-race. Measurements count every
    full-length run of the config, repeats included; failed repeats count as
    attempts, so a config that keeps failing is not retried forever.
    """
    full = [t for t in trials if t.full]
    best_search: dict[str, float] = {}
    first: dict[str, Trial] = {}
    for trial in sorted(full, key=lambda t: t.number):
        key = config_key(trial.config)
        first.setdefault(key, trial)
        loss = _loss(trial, direction)
        if loss is None or trial.repeat or trial.is_baseline:
            continue
        best_search[key] = min(loss, best_search.get(key, math.inf))
    base_trial = next((t for t in full if t.is_baseline and t.ok), None)
    base_key = None if base_trial is None else config_key(base_trial.config)
    ranked = sorted(
        (key for key in best_search if key != base_key),
        key=lambda key: (best_search[key], first[key].number),
    )[:k]
    keys = ([] if base_key is None else [base_key]) + ranked
    out = {key: Contender(first[key].config, key == base_key) for key in keys}
    for trial in full:
        entry = out.get(config_key(trial.config))
        if entry is None:
            continue
        # A failed search run (a baseline that failed once) is no measurement; a failed
        # repeat is an attempt spent on this config.
        if trial.ok or trial.repeat or not trial.finished:
            entry.attempts += 1
        loss = _loss(trial, direction)
        if loss is not None:
            entry.losses.append(loss)
    return list(out.values())


def pooled_std(field_: Sequence[Contender]) -> float:
    """Within-config standard deviation pooled over contenders with two or more runs; 0 if none.

    Noise on one host is roughly common to all configs, so pooling gives a
    usable estimate long before any single config has enough runs of its own.
    """
    num = den = 0.0
    for c in field_:
        if len(c.losses) >= 2:
            num += statistics.variance(c.losses) * (len(c.losses) - 1)
            den += len(c.losses) - 1
    return math.sqrt(num / den) if den else 0.0


def next_repeat(field_: Sequence[Contender]) -> Contender | None:
    """The contender the next repeat should measure (see the module docstring); None if no
    contender is left to race."""
    if not field_:
        return None
    for c in field_:  # baseline first: the ratio needs it
        if c.attempts < 2:
            return c
    baseline = next((c for c in field_ if c.is_baseline), None)
    others = [c for c in field_ if not c.is_baseline]
    if not others:
        return baseline
    s = pooled_std(field_)
    leader = min(others, key=lambda c: c.bound(s))  # min keeps the first of equal bounds
    if baseline is not None and baseline.attempts < min(leader.attempts, BASELINE_MAX):
        return baseline
    return leader


def plan_repeats(trials: Sequence[Trial], direction: str, n: int) -> list[Contender]:
    """``n`` repeats in a row, each counted as in flight before choosing the next."""
    field_ = contenders(trials, direction)
    out: list[Contender] = []
    for _ in range(n):
        pick = next_repeat(field_)
        if pick is None:
            break
        pick.attempts += 1
        out.append(pick)
    return out


__all__ = [
    "BASELINE_MAX",
    "CONTENDERS",
    "EXPLORATION",
    "Contender",
    "contenders",
    "next_repeat",
    "plan_repeats",
    "pooled_std",
]

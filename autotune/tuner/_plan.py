"""The search's next trials: the baseline (again if it failed, until it cannot run),
drift controls, the starting points (``_start``), the optimiser's suggestions at their
fidelity, and the racing repeats."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from autotune.optimizers import Optimizer, SpaceExhausted, Suggestion
from autotune.spec import Config
from autotune.store import Experiment, Proposal, Store, Trial
from autotune.tuner._drift import control_due
from autotune.tuner._experiment import (
    _baseline_config,
    _controls,
)
from autotune.tuner._racing import plan_repeats
from autotune.tuner._start import start_configs
from autotune.tuner._verify import (
    Arm,
)

log = logging.getLogger("autotune.tuner")


@dataclass
class _Cache:
    optimizer_name: str
    optimizer: Optimizer
    trials: dict[int, Trial] = field(default_factory=dict)
    told: set[int] = field(default_factory=set)
    saved_state: dict[str, Any] | None = None  # what the store holds, to save only changes
    from_state: bool = False  # built with the stored state loaded
    warm_done: bool = False  # the warm start (if any) has been resolved and told
    arms: tuple[int, list[Arm]] | None = None  # (last search trial, the verification's arms)
    # Why the search ended before its budget: "exhausted" (no untried valid config left)
    # or "baseline failed" (the spec's defaults failed twice); None while it goes on.
    ended: str | None = None
    starts: list[Config] | None = None  # the starting points, once worked out


BASELINE_TRIES = 2  # a failed baseline is tried once more (a passing fault), then no more


class _Planning:
    """How the Scheduler plans the search (see the module docstring)."""

    store: Store
    _cache: dict[int, _Cache]

    def _ended(self, experiment: Experiment) -> bool:
        """The search ended before its budget (found here, or as the store said when the
        optimiser was built): the space is used up, or the baseline cannot run."""
        cached = self._cache.get(experiment.id)
        return cached is not None and cached.ended is not None

    def _end_search(self, experiment: Experiment, why: str, **detail: Any) -> None:
        """End the search, once, with a note kept as the experiment's "search" analysis."""
        cached = self._cache[experiment.id]
        if cached.ended is not None:
            return
        cached.ended = why
        log.info("experiment %s: search ended: %s %s", experiment.name, why, detail)
        self.store.add_analysis(
            experiment, "search", {"ended": why, "budget": experiment.budget, **detail}
        )

    def _suggest(
        self,
        experiment: Experiment,
        trials: list[Trial],
        optimizer: Optimizer,
        n: int,
        pending: list[Suggestion],
    ) -> list[Suggestion]:
        """The optimiser's next ``n``; none once a small space is used up, which ends the
        search with a note, kept as the experiment's "search" analysis."""
        if self._ended(experiment):
            return []
        for k in range(n, 0, -1):  # fewer than n may still be untried
            try:
                return optimizer.suggest(k, pending=pending)
            except SpaceExhausted:
                continue
        # The search's trials so far, and those proposed in this call (the pending ones
        # that are not in flight).
        search = (
            sum(t.searched for t in trials) + len(pending) - sum(not t.finished for t in trials)
        )
        self._end_search(experiment, "exhausted", trials=search)
        return []

    def _plan(
        self, experiment: Experiment, trials: list[Trial], optimizer: Optimizer, room: int
    ) -> list[Proposal]:
        space = optimizer.space
        number = max((t.number for t in trials), default=0)
        every = _controls(experiment)
        if every and room > 0 and control_due(trials, every):
            # The default again, before the next search trial: the host's level now.
            number += 1
            room -= 1
            controls = [Proposal(number, _baseline_config(trials, space), phase="control")]
        else:
            controls = []
        trials = [t for t in trials if t.searched]
        in_flight = [Suggestion(t.config, t.fidelity, t.repeat) for t in trials if not t.finished]
        proposals: list[Proposal] = []
        failed = [t for t in trials if t.is_baseline and t.status == "failed"]
        if len(failed) >= BASELINE_TRIES and not any(t.is_baseline and t.ok for t in trials):
            # The spec's defaults do not run here: every other config is measured against
            # them, so nothing else is tried.
            # The history is light (no errors): the last failure's comes from the store.
            full = [t for t in self.store.trials(experiment) if t.number == failed[-1].number]
            self._end_search(
                experiment,
                "baseline failed",
                trials=len(trials),
                error=(full[0].error if full else None) or "no error recorded",
            )
            return controls
        if not any(t.is_baseline and t.status != "failed" for t in trials):
            number += 1
            proposals.append(Proposal(number, space.default(), is_baseline=True))
            in_flight.append(Suggestion(space.default()))
        # Trials numbered past this many are repeats; failed trials use up the budget too.
        search_until = experiment.budget - experiment.repeats
        cached = self._cache[experiment.id]
        if cached.starts is None:
            cached.starts = start_configs(experiment, space)
        starts = cached.starts
        tried = (
            {space.key(t.config) for t in trials} | {space.key(p.config) for p in proposals}
            if starts
            else set()
        )  # only with starting points: proposing stays cheap at thousands of trials
        for config in starts:
            # Each starting point once, right after the baseline: tried (failed included),
            # in flight or proposed now, it is not proposed again.
            if len(proposals) >= room or len(trials) + len(proposals) >= search_until:
                break
            if space.key(config) not in tried:
                number += 1
                proposals.append(Proposal(number, dict(config)))
                in_flight.append(Suggestion(dict(config)))
        searching = max(0, min(room - len(proposals), search_until - len(trials) - len(proposals)))
        if searching > 0:
            for suggestion in self._suggest(experiment, trials, optimizer, searching, in_flight):
                number += 1
                proposals.append(
                    Proposal(
                        number,
                        suggestion.config,
                        fidelity=suggestion.fidelity,
                        repeat=suggestion.repeat,
                    )
                )
        if self._ended(experiment):
            return controls + proposals  # nothing new to race against: the search is over
        racing = room - len(proposals)
        if racing > 0:
            planned = [
                Trial(
                    number=p.number,
                    config=p.config,
                    status="pending",
                    objective=None,
                    started_at=None,
                    finished_at=None,
                    is_baseline=p.is_baseline,
                    fidelity=p.fidelity,
                    repeat=p.repeat,
                )
                for p in proposals
            ]
            for pick in plan_repeats([*trials, *planned], experiment.direction, racing):
                number += 1
                proposals.append(
                    Proposal(number, dict(pick.config), is_baseline=pick.is_baseline, repeat=True)
                )
        left = room - len(proposals)
        if left > 0:  # nothing to race yet (no trial has succeeded): keep searching
            pending = [*in_flight, *(Suggestion(p.config, p.fidelity) for p in proposals)]
            for suggestion in self._suggest(experiment, trials, optimizer, left, pending):
                number += 1
                proposals.append(Proposal(number, suggestion.config, fidelity=suggestion.fidelity))
        return controls + proposals

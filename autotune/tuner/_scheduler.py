"""The central tuner: propose configs into the store, lease them to agents, take reports.

State lives in the store, not in this object: any number of schedulers (one
per server process, or the in-process one of ``autotune tune``) can share a
store. Proposals are keyed by (experiment, trial number), so two schedulers
racing to propose produce one batch; leases use row locks (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so a trial is never leased twice.

An experiment's budget runs in two phases: search trials come from the
optimiser (``suggest``, at the fidelity it chooses), and the last
``repeats`` trials re-measure the best configs found (``_racing``), so the
reported best rests on repeated runs. A wall-clock budget stops proposals early.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autotune.agent import ExperimentInfo, Lease, TrialOutcome, trial_duration_s
from autotune.optimizers import Optimizer, Suggestion, make_optimizer
from autotune.space import Space
from autotune.spec import Machine, parse_spec
from autotune.store import Experiment, Proposal, Store, Trial, now
from autotune.tuner._racing import plan_repeats
from autotune.tuner._tuner import TuningError, loss_of
from autotune.tuner._warm import WarmStart, baseline_value, resolve_warm_start

log = logging.getLogger("autotune.tuner")

DEFAULT_LEASE_S = 60.0


def experiment_info(experiment: Experiment) -> ExperimentInfo:
    settings = experiment.settings
    return ExperimentInfo(
        name=experiment.name,
        system=experiment.system,
        spec_content=experiment.spec_content,
        spec_path=experiment.spec_path,
        spec_hash=experiment.spec_hash,
        workload_name=experiment.workload_name,
        workload_content=experiment.workload_content,
        workload_path=experiment.workload_path,
        workload_hash=experiment.workload_hash,
        workload_files=experiment.workload_files,
        objective_metric=experiment.objective_metric,
        direction=experiment.direction,
        duration_s=settings.get("duration_s"),
        knobs=list(settings.get("knobs", [])),
        machine=settings.get("machine"),
    )


def experiment_space(experiment: Experiment) -> Space:
    """The experiment's search space, resolved on the machine it was created for."""
    recorded = experiment.settings.get("machine")
    machine = Machine(**recorded) if isinstance(recorded, dict) else Machine.local()
    knobs = tuple(experiment.settings.get("knobs", []))
    return _space(experiment.spec_content, experiment.spec_path, knobs, machine)


@functools.lru_cache(maxsize=64)
def _space(content: str, path: str, knobs: tuple[str, ...], machine: Machine) -> Space:
    """Parsing a spec takes tens of milliseconds; a busy server proposes many times a second."""
    return Space(parse_spec(content, path, machine), list(knobs), machine)


@dataclass
class _Cache:
    optimizer_name: str
    optimizer: Optimizer
    trials: dict[int, Trial] = field(default_factory=dict)
    told: set[int] = field(default_factory=set)
    saved_state: dict[str, Any] | None = None  # what the store holds, to save only changes
    from_state: bool = False  # built with the stored state loaded
    warm_done: bool = False  # the warm start (if any) has been resolved and told


def _count(trials: list[Trial]) -> dict[str, int]:
    out: dict[str, int] = {}
    for trial in trials:
        out[trial.status] = out.get(trial.status, 0) + 1
    return out


class Scheduler:
    """Proposes, leases and records trials for every running experiment in a store."""

    def __init__(self, store: Store, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.store = store
        self.lease_s = lease_s
        # Within one process, propose one batch at a time; across processes the
        # store's keys and row locks keep things right.
        self._lock = threading.Lock()
        self._cache: dict[int, _Cache] = {}

    def _lease_s(self, experiment: Experiment) -> float:
        return float(experiment.settings.get("lease_s") or self.lease_s)

    def _build(self, experiment: Experiment, warm: WarmStart | None = None) -> _Cache:
        """A new optimiser with the stored state loaded, told the warm start's trials first."""
        space = experiment_space(experiment)
        optimizer = make_optimizer(experiment.optimizer, space, experiment.seed)
        cached = _Cache(experiment.optimizer, optimizer)
        state = experiment.optimizer_state
        if state is not None:
            # Before the history is told again: the state says how to read it.
            try:
                optimizer.load_state(state)
            except Exception as exc:  # a stale or foreign state is a cache miss, not an error
                log.warning(
                    "experiment %s: optimiser state not loaded (%s); rebuilt from trials",
                    experiment.name,
                    exc,
                )
                optimizer = make_optimizer(experiment.optimizer, space, experiment.seed)
                cached = _Cache(experiment.optimizer, optimizer)
            else:
                cached.saved_state = state
                cached.from_state = True
        if warm is not None:
            for config, loss in warm.observations:
                optimizer.tell(config, loss)
        asked = experiment.settings.get("warm_start") or "none"
        cached.warm_done = warm is not None or asked == "none"
        return cached

    def _history(self, experiment: Experiment) -> tuple[list[Trial], Optimizer]:
        """The experiment's trials and an optimiser told every finished one.

        Finished trials never change, so they are kept between calls and only
        new or unfinished ones are read again: proposing stays cheap at
        thousands of trials. The store stays the only truth; several
        schedulers each keep their own copy. A warm start is resolved once the
        baseline has finished; the optimiser is then rebuilt, told the past
        trials before this experiment's own.
        """
        cached = self._cache.get(experiment.id)
        if cached is None or cached.optimizer_name != experiment.optimizer:
            cached = self._build(experiment)
            self._cache[experiment.id] = cached
        open_numbers = [n for n, t in cached.trials.items() if not t.finished]
        last = max(cached.trials, default=0)
        for trial in self.store.history(experiment, after=last, numbers=open_numbers):
            cached.trials[trial.number] = trial
        trials = [cached.trials[n] for n in sorted(cached.trials)]
        if not cached.warm_done and baseline_value(trials) is not None:
            fresh = self.store.require_experiment(experiment.name)  # settings as decided
            warm = resolve_warm_start(
                self.store, fresh, trials, cached.optimizer.space, experiment_space
            )
            if warm is not None and warm.observations:
                rebuilt = self._build(fresh, warm)
                rebuilt.trials = cached.trials
                cached = self._cache[experiment.id] = rebuilt
            cached.warm_done = True
        for trial in trials:
            if trial.finished and trial.number not in cached.told:
                loss = loss_of(trial, experiment.direction)
                cached.optimizer.tell(trial.config, loss, fidelity=trial.fidelity)
                cached.told.add(trial.number)
        cached.optimizer.reseed(len(trials))
        # On every call: the service can change the budget while the experiment runs.
        cached.optimizer.plan_budget(
            max(0, experiment.budget - experiment.repeats),
            timed=experiment.settings.get("time_budget_s") is not None,
        )
        return trials, cached.optimizer

    def propose(self, experiment: Experiment, room: int) -> list[Proposal]:
        """Up to ``room`` new trials: the baseline, then search, then repeats.

        The baseline (the spec's defaults) comes first, and again if it failed.
        Search trials come from the optimiser, which sees every trial in flight
        and picks each one's fidelity. The budget's last ``repeats`` trials
        re-measure the best configs at full length (see ``_racing``). After
        proposing, the optimiser's state is saved when it changed.
        """
        trials, optimizer = self._history(experiment)
        room = min(room, self._room(experiment, _count(trials)))
        try:
            proposals = self._plan(experiment, trials, optimizer, room) if room > 0 else []
        except Exception as exc:
            if not self._cache[experiment.id].from_state:
                raise
            # load_state took a state the optimiser then cannot use: it is only a cache,
            # so drop it and rebuild from the trials, once.
            log.warning(
                "experiment %s: optimiser failed with its stored state (%s); rebuilt from trials",
                experiment.name,
                exc,
            )
            self.store.save_optimizer_state(experiment, None)
            experiment = dataclasses.replace(experiment, optimizer_state=None)
            del self._cache[experiment.id]
            trials, optimizer = self._history(experiment)
            proposals = self._plan(experiment, trials, optimizer, room)
        self._save_state(experiment, optimizer)
        return proposals

    def _plan(
        self, experiment: Experiment, trials: list[Trial], optimizer: Optimizer, room: int
    ) -> list[Proposal]:
        space = optimizer.space
        in_flight = [Suggestion(t.config, t.fidelity, t.repeat) for t in trials if not t.finished]
        number = max((t.number for t in trials), default=0)
        proposals: list[Proposal] = []
        if not any(t.is_baseline and t.status != "failed" for t in trials):
            number += 1
            proposals.append(Proposal(number, space.default(), is_baseline=True))
            in_flight.append(Suggestion(space.default()))
        # Trials numbered past this many are repeats; failed trials use up the budget too.
        search_until = experiment.budget - experiment.repeats
        searching = max(0, min(room - len(proposals), search_until - len(trials) - len(proposals)))
        if searching > 0:
            for suggestion in optimizer.suggest(searching, pending=in_flight):
                number += 1
                proposals.append(
                    Proposal(
                        number,
                        suggestion.config,
                        fidelity=suggestion.fidelity,
                        repeat=suggestion.repeat,
                    )
                )
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
            for suggestion in optimizer.suggest(left, pending=pending):
                number += 1
                proposals.append(Proposal(number, suggestion.config, fidelity=suggestion.fidelity))
        return proposals

    def _save_state(self, experiment: Experiment, optimizer: Optimizer) -> None:
        """Keep the optimiser's state in the store when it changed, for the next scheduler."""
        cached = self._cache.get(experiment.id)
        try:
            # Round-tripped so that what we compare is what the store gives back.
            state = json.loads(json.dumps(optimizer.state_dict()))
        except (TypeError, ValueError) as exc:
            log.warning("experiment %s: optimiser state is not JSON (%s)", experiment.name, exc)
            return
        if cached is None or state == cached.saved_state:
            return
        if not state and cached.saved_state is None:
            return  # nothing to keep, and nothing kept
        self.store.save_optimizer_state(experiment, state)
        cached.saved_state = state

    def lease(self, agent: str, experiment: str | None = None) -> Lease | None:
        """The next trial for ``agent`` (from one experiment, if named), or None."""
        for exp in self.store.running_experiments():
            if experiment is not None and exp.name != experiment:
                continue
            counts = self.store.trial_counts(exp)
            if self._spent(exp, counts):
                self.store.update_experiment(exp, status="done")
                continue
            if self._room(exp, counts) > 0:
                # Only proposing needs the whole history and the optimiser; leasing
                # an already proposed trial is one locked row.
                with self._lock:
                    proposals = self.propose(exp, exp.parallelism)
                    if proposals:
                        self.store.add_proposals(exp, proposals)
            got = self.store.lease_next(exp, agent, self._lease_s(exp))
            if got is not None:
                trial, lease_id = got
                assert trial.id is not None
                return Lease(
                    trial_id=trial.id,
                    lease_id=lease_id,
                    number=trial.number,
                    config=trial.config,
                    is_baseline=trial.is_baseline,
                    lease_s=self._lease_s(exp),
                    experiment=experiment_info(exp),
                    fidelity=trial.fidelity,
                    repeat=trial.repeat,
                    duration_s=trial_duration_s(exp.duration_s, trial.fidelity),
                )
        return None

    @staticmethod
    def _out_of_time(experiment: Experiment) -> bool:
        deadline = experiment.deadline
        return deadline is not None and now() >= deadline

    @classmethod
    def _room(cls, experiment: Experiment, counts: dict[str, int]) -> int:
        """How many new trials may be proposed: parallelism, budget and time all bound it."""
        if cls._out_of_time(experiment):
            return 0
        total = sum(counts.values())
        active = counts.get("pending", 0) + counts.get("leased", 0)
        return min(experiment.parallelism - active, experiment.budget - total)

    @classmethod
    def _spent(cls, experiment: Experiment, counts: dict[str, int]) -> bool:
        """Done: every budgeted trial finished, or time is up and none is left in flight."""
        finished = counts.get("ok", 0) + counts.get("failed", 0)
        if finished >= experiment.budget:
            return True
        active = counts.get("pending", 0) + counts.get("leased", 0)
        return active == 0 and cls._out_of_time(experiment)

    def heartbeat(self, agent: str, trial_id: int, lease_id: str) -> datetime:
        experiment = self.store.experiment_of_trial(trial_id)
        return self.store.heartbeat(trial_id, lease_id, agent, self._lease_s(experiment))

    def release(self, agent: str, trial_id: int, lease_id: str) -> None:
        self.store.release(trial_id, lease_id, agent)

    def report(self, agent: str, trial_id: int, lease_id: str, outcome: TrialOutcome) -> Trial:
        """Record a result from the lease holder; LeaseConflict if it is not theirs (any more)."""
        experiment = self.store.experiment_of_trial(trial_id)
        metric = experiment.objective_metric
        status, error = outcome.status, outcome.error
        objective = outcome.metrics.get(metric) if status == "ok" else None
        if status == "ok" and objective is None:
            status, error = "failed", f"the workload reported no {metric!r}"
        if status not in ("ok", "failed"):
            raise TuningError(f"a report's status must be ok or failed, not {status!r}")
        result = Trial(
            number=0,  # kept from the leased row
            config={},
            status=status,
            objective=objective,
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            metrics=outcome.metrics,
            timings=outcome.timings,
            status_history=outcome.status_history,
            not_applied=outcome.not_applied,
            error=error,
            log_excerpt=outcome.log_excerpt,
        )
        stored = self.store.finish(trial_id, lease_id, agent, result)
        if self._spent(experiment, self.store.trial_counts(experiment)):
            self.store.update_experiment(experiment, status="done")
        return stored


__all__ = ["DEFAULT_LEASE_S", "Scheduler", "experiment_info", "experiment_space"]

"""The central tuner: propose configs into the store, lease them to agents, take reports.

State lives in the store, not in this object: any number of schedulers (one
per server process, or the in-process one of ``autotune tune``) can share a
store. Proposals are keyed by (experiment, trial number), so two schedulers
racing to propose produce one batch; leases use row locks (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so a trial is never leased twice.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from datetime import datetime

from autotune.agent import ExperimentInfo, Lease, TrialOutcome
from autotune.optimizers import Optimizer, make_optimizer
from autotune.space import Space
from autotune.spec import Machine, parse_spec
from autotune.store import Experiment, Proposal, Store, Trial
from autotune.tuner._tuner import TuningError, loss_of

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

    def _history(self, experiment: Experiment) -> tuple[list[Trial], Optimizer]:
        """The experiment's trials and an optimiser told every finished one.

        Finished trials never change, so they are kept between calls and only
        new or unfinished ones are read again: proposing stays cheap at
        thousands of trials. The store stays the only truth; several
        schedulers each keep their own copy.
        """
        cached = self._cache.get(experiment.id)
        if cached is None or cached.optimizer_name != experiment.optimizer:
            space = experiment_space(experiment)
            optimizer = make_optimizer(experiment.optimizer, space, experiment.seed)
            cached = _Cache(experiment.optimizer, optimizer)
            self._cache[experiment.id] = cached
        open_numbers = [n for n, t in cached.trials.items() if not t.finished]
        last = max(cached.trials, default=0)
        for trial in self.store.history(experiment, after=last, numbers=open_numbers):
            cached.trials[trial.number] = trial
            if trial.finished and trial.number not in cached.told:
                cached.optimizer.tell(trial.config, loss_of(trial, experiment.direction))
                cached.told.add(trial.number)
        trials = [cached.trials[n] for n in sorted(cached.trials)]
        cached.optimizer.reseed(len(trials))
        return trials, cached.optimizer

    def propose(self, experiment: Experiment, room: int) -> list[Proposal]:
        """Up to ``room`` new configs, distinct from every trial so far, in flight included.

        The baseline (the spec's defaults) comes first, and again if it failed.
        """
        trials, optimizer = self._history(experiment)
        space = optimizer.space
        room = min(room, self._room(experiment, _count(trials)))
        if room <= 0:
            return []
        in_flight = [t.config for t in trials if not t.finished]
        number = max((t.number for t in trials), default=0)
        proposals: list[Proposal] = []
        if not any(t.is_baseline and t.status != "failed" for t in trials):
            number += 1
            proposals.append(Proposal(number, space.default(), is_baseline=True))
            in_flight.append(space.default())
        wanted = room - len(proposals)
        if wanted > 0:
            for config in optimizer.ask(wanted, pending=in_flight):
                number += 1
                proposals.append(Proposal(number, config))
        return proposals

    def lease(self, agent: str, experiment: str | None = None) -> Lease | None:
        """The next trial for ``agent`` (from one experiment, if named), or None."""
        for exp in self.store.running_experiments():
            if experiment is not None and exp.name != experiment:
                continue
            counts = self.store.trial_counts(exp)
            if counts.get("ok", 0) + counts.get("failed", 0) >= exp.budget:
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
                )
        return None

    @staticmethod
    def _room(experiment: Experiment, counts: dict[str, int]) -> int:
        """How many new trials may be proposed: parallelism and budget both bound it."""
        total = sum(counts.values())
        active = counts.get("pending", 0) + counts.get("leased", 0)
        return min(experiment.parallelism - active, experiment.budget - total)

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
        counts = self.store.trial_counts(experiment)
        if counts.get("ok", 0) + counts.get("failed", 0) >= experiment.budget:
            self.store.update_experiment(experiment, status="done")
        return stored


__all__ = ["DEFAULT_LEASE_S", "Scheduler", "experiment_info", "experiment_space"]

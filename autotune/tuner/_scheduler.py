"""The central tuner: propose configs into the store, lease them to agents, take reports.

State lives in the store, not in this object: any number of schedulers (one
per server process, or the in-process one of ``autotune tune``) can share a
store. Proposals are keyed by (experiment, trial number), so two schedulers
racing to propose produce one batch; leases use row locks (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so a trial is never leased twice.

An experiment's budget is its search: trials from the optimiser (``suggest``,
at the fidelity it chooses), the last ``repeats`` of which may re-measure the
best configs found (``_racing``). Then, when the experiment asks for one, a
paired verification (``_verify``): the default, the top contenders and pgtune
in interleaved rounds, one run at a time, until the best's ratio to the
default is known to ±precision; the session's claim comes from these rounds
only. A wall-clock budget stops the search early enough to leave the
verification its minimum rounds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from autotune.agent import Lease, TrialOutcome, trial_duration_s
from autotune.optimizers import Optimizer, make_optimizer
from autotune.space import Space
from autotune.store import Experiment, Proposal, Store, Trial, now
from autotune.tuner._arms import choose_arms, pgtune_for
from autotune.tuner._drift import corrected_objectives, with_corrected
from autotune.tuner._experiment import (
    _active,
    _baseline_config,
    _controls,
    _finished,
    experiment_info,
    experiment_space,
    reported_config,
)
from autotune.tuner._plan import _Cache, _Planning
from autotune.tuner._safety import experiment_floor
from autotune.tuner._tuner import TuningError, loss_of
from autotune.tuner._verify import (
    next_verify_run,
    summarize_verification,
    verify_batch,
    verify_policy,
    verify_reserve_s,
    verify_runs,
)
from autotune.tuner._warm import WarmStart, baseline_value, resolve_warm_start

log = logging.getLogger("autotune.tuner")

DEFAULT_LEASE_S = 60.0


class Scheduler(_Planning):
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
        notes = self.store.analyses(experiment, "search")
        cached.ended = notes[-1].result.get("ended") if notes else None
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
        corrected = corrected_objectives(trials) if _controls(experiment) else {}
        for trial in trials:
            # Control and verification runs are not the optimiser's: a verification arm
            # (pgtune) may set knobs outside the space. With drift controls, the optimiser
            # is told each trial as the host's level at the time corrects it.
            if trial.finished and trial.searched and trial.number not in cached.told:
                if trial.number in corrected:
                    trial = dataclasses.replace(trial, objective=corrected[trial.number])
                loss = loss_of(trial, experiment.direction)
                cached.optimizer.tell(trial.config, loss, fidelity=trial.fidelity)
                cached.told.add(trial.number)
        cached.optimizer.reseed(len(trials))
        cached.optimizer.plan_safety(
            experiment_floor(experiment, trials), _baseline_config(trials, cached.optimizer.space)
        )
        # On every call: the service can change the budget while the experiment runs.
        cached.optimizer.plan_budget(
            max(0, experiment.budget - experiment.repeats),
            timed=experiment.settings.get("time_budget_s") is not None,
        )
        return trials, cached.optimizer

    def propose(self, experiment: Experiment, room: int) -> list[Proposal]:
        """Up to ``room`` new trials: the baseline, then search, then repeats; once the
        search is over, the verification's next run.

        The baseline (the spec's defaults) comes first, and again if it failed.
        Search trials come from the optimiser, which sees every trial in flight
        and picks each one's fidelity. The budget's last ``repeats`` trials
        re-measure the best configs at full length (see ``_racing``). After
        proposing, the optimiser's state is saved when it changed.
        """
        trials, optimizer = self._history(experiment)
        if not self._searching(experiment, trials):
            if room < 1 or any(not t.finished for t in trials):
                return []  # verification runs one trial at a time, so rounds stay paired
            proposal = self._verify_next(experiment, trials, optimizer.space)
            return [] if proposal is None else [proposal]
        room = min(room, self._search_room(experiment, trials))
        try:
            proposals = self._plan(experiment, trials, optimizer, room) if room > 0 else []
        except Exception as exc:
            if not self._cache[experiment.id].from_state:
                raise
            # Perhaps load_state took a state the optimiser then cannot use. The state is
            # only a cache: rebuild from the trials, once, and drop the state only if
            # that works. If it fails too, the state was not the fault: it is kept.
            stale = self._cache.pop(experiment.id)
            rebuilt = dataclasses.replace(experiment, optimizer_state=None)
            try:
                trials, optimizer = self._history(rebuilt)
                proposals = self._plan(rebuilt, trials, optimizer, room)
            except Exception:
                self._cache[experiment.id] = stale
                log.error(
                    "experiment %s: the optimiser fails with and without its stored state "
                    "(%s); the state is kept",
                    experiment.name,
                    exc,
                )
                raise
            log.warning(
                "experiment %s: optimiser failed with its stored state (%s); rebuilt from "
                "trials, and the state dropped",
                experiment.name,
                exc,
            )
            self.store.save_optimizer_state(experiment, None)
            experiment = rebuilt
        self._save_state(experiment, optimizer)
        if not proposals and self._cache[experiment.id].ended:
            if any(not t.finished for t in trials):
                return []  # the verification (if any) waits for the search's last trials
            return self.propose(experiment, room)  # no longer searching: what follows
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

    def lease(
        self, agent: str, experiment: str | None = None, host: str | None = None
    ) -> Lease | None:
        """The next trial for ``agent`` (from one experiment, if named), or None.

        An agent that names its ``host`` is not given a trial while another agent
        runs one there, unless the experiments allow colocated trials.
        """
        if host is not None:
            self.store.note_host(agent, host)
        for exp in self.store.running_experiments():
            if experiment is not None and exp.name != experiment:
                continue
            counts = self.store.trial_counts(exp)
            with self._lock:
                if self._spent(exp, counts):
                    self.store.update_experiment(exp, status="done")
                    continue
                if _active(counts) < exp.parallelism:
                    # Only proposing needs the history and the optimiser; leasing an
                    # already proposed trial is one locked row.
                    proposals = self.propose(exp, exp.parallelism - _active(counts))
                    if proposals:
                        self.store.add_proposals(exp, proposals)
                    elif self._spent(exp, counts):  # proposing found the search over
                        self.store.update_experiment(exp, status="done")
                        continue
            got = self.store.lease_next(exp, agent, self._lease_s(exp), host)
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
                    phase=trial.phase,
                    round=trial.round,
                    arm=trial.arm,
                    reference=self._reference(exp, trial),
                )
        return None

    @staticmethod
    def _out_of_time(experiment: Experiment, reserve_s: float = 0.0) -> bool:
        deadline = experiment.deadline
        return deadline is not None and now() >= deadline - timedelta(seconds=reserve_s)

    def _searching(self, experiment: Experiment, trials: list[Trial]) -> bool:
        """Whether the search goes on: budget and time left, or a search trial in flight."""
        search = [t for t in trials if t.searched]
        if any(not t.finished for t in search):
            return True
        if self._ended(experiment):
            return False
        return len(search) < experiment.budget and not self._search_out_of_time(experiment, search)

    def _search_out_of_time(self, experiment: Experiment, search: list[Trial]) -> bool:
        """Past the time budget, less what the verification's minimum rounds will take."""
        policy = verify_policy(experiment)
        reserve = 0.0 if policy is None else verify_reserve_s(policy, search)
        return self._out_of_time(experiment, reserve)

    def _search_room(self, experiment: Experiment, trials: list[Trial]) -> int:
        """How many search trials may be proposed: parallelism, budget and time bound it."""
        search = [t for t in trials if t.searched]
        if self._search_out_of_time(experiment, search):
            return 0
        active = sum(not t.finished for t in trials)
        return min(experiment.parallelism - active, experiment.budget - len(search))

    def _verify_next(
        self, experiment: Experiment, trials: list[Trial], space: Space
    ) -> Proposal | None:
        """The verification's next run, or None when it is over (or not wanted)."""
        policy = verify_policy(experiment)
        if policy is None:
            return None
        cached = self._cache[experiment.id]
        # The arms follow from the search; a resume that searched more chooses them again.
        searched = max((t.number for t in trials if t.searched), default=0)
        if cached.arms is None or cached.arms[0] != searched:
            ranked = with_corrected(trials) if _controls(experiment) else trials
            pgtune = pgtune_for(experiment, space)
            cached.arms = (
                searched,
                choose_arms(ranked, experiment.direction, space.spec, policy, pgtune),
            )
        arms = cached.arms[1]
        if len(arms) < 2:
            return None  # no tuned config succeeded: nothing to compare with the default
        batch = verify_batch(trials)
        state = summarize_verification(arms, verify_runs(batch), experiment.direction, policy)
        # Beside a twin, every run measures the default too: it needs no runs of its own.
        queue = arms[1:] if policy.twin else arms
        round_, arm = next_verify_run(queue, batch)
        new_round = not any(t.round == round_ for t in batch)
        if new_round and (
            state.stopped or (self._out_of_time(experiment) and state.rounds >= policy.min_rounds)
        ):
            return None
        number = max(t.number for t in trials) + 1
        return Proposal(number, dict(arm.config), phase="verify", round=round_, arm=arm.label)

    def _reference(self, experiment: Experiment, trial: Trial) -> dict[str, Any] | None:
        """For a verification run beside a twin: the default config the twin runs."""
        policy = verify_policy(experiment)
        if trial.phase != "verify" or policy is None or not policy.twin:
            return None
        cached = self._cache.get(experiment.id)
        if cached is None or cached.arms is None:  # proposed by another scheduler
            with self._lock:
                trials, optimizer = self._history(experiment)
                self._verify_next(experiment, trials, optimizer.space)
                cached = self._cache[experiment.id]
        assert cached.arms is not None
        return dict(cached.arms[1][0].config)

    def _spent(self, experiment: Experiment, counts: dict[str, int]) -> bool:
        """Done: nothing in flight, the search over (every budgeted trial finished, or its
        time up), and the verification over or not wanted. Call it holding the lock: it
        may read the history into the cache."""
        if _active(counts):
            return False
        policy = verify_policy(experiment)
        if policy is None:
            search = self.store.trial_counts(experiment, phase="search")
            if _finished(search) >= experiment.budget or self._out_of_time(experiment):
                return True
            return self._ended(experiment)
        trials, optimizer = self._history(experiment)
        if self._searching(experiment, trials):
            return False
        return self._verify_next(experiment, trials, optimizer.space) is None

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
        ran = reported_config(experiment, outcome.config)
        result = Trial(
            number=0,  # kept from the leased row
            config=ran,  # {}: the leased config, kept
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
        with self._lock:
            if self._spent(experiment, self.store.trial_counts(experiment)):
                self.store.update_experiment(experiment, status="done")
        return stored


__all__ = ["DEFAULT_LEASE_S", "Scheduler"]

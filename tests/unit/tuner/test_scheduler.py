"""The scheduler and a multi-fidelity optimiser: suggest/tell with fidelity, its saved state,
run lengths in leases, and the wall-clock budget."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest

from autotune.agent import (
    MIN_TRIAL_S,
    AgentRunner,
    ExperimentInfo,
    Lease,
    TrialOutcome,
    trial_duration_s,
)
from autotune.optimizers import OPTIMIZERS, Optimizer, Suggestion
from autotune.spec import Config
from autotune.store import Experiment, Store, now
from autotune.tuner import Scheduler
from autotune.workloads import WorkloadDef
from tests.unit._support import MACHINE
from tests.unit.tuner.test_tuner import NAMES, outcome, run_all, tps


class Screening(Optimizer):
    """A small real optimiser: each new config runs at a quarter length first, then again
    at full length. It keeps a counter in its state, as a model's fitted parameters would be."""

    name = "screening"
    log: list[tuple[str, Any]] = []  # noqa: RUF012 - what every instance saw, in order
    broken = False  # a fault of the optimiser itself, state or not

    def __init__(self, space: Any, seed: int = 0) -> None:
        super().__init__(space, seed)
        self.proposed = 0
        self.poisoned = False
        self.pending_seen: list[list[Suggestion]] = []
        Screening.log.append(("init", None))

    def ask(self, n: int = 1, pending: Sequence[Config] = ()) -> list[Config]:
        return self._fresh(list(self.space.sample(self.rng, 10 * n)), n, pending)

    def suggest(self, n: int = 1, pending: Sequence[Suggestion] = ()) -> list[Suggestion]:
        if self.poisoned:
            raise ValueError("Probabilities contain NaN")  # a state it took but cannot use
        if Screening.broken:
            raise RuntimeError("a bug in suggest")
        self.pending_seen.append(list(pending))
        promoted = {self.space.key(p.config) for p in pending if p.fidelity == 1.0}
        promoted |= {self.space.key(c) for c, _, f in self.observations_ if f == 1.0}
        out = []
        for config, loss, fidelity in self.observations_:
            key = self.space.key(config)
            if fidelity < 1.0 and loss is not None and key not in promoted and len(out) < n:
                out.append(Suggestion(config, fidelity=1.0))
                promoted.add(key)
        if len(out) < n:
            fresh = self.ask(n - len(out), [p.config for p in pending])
            out += [Suggestion(c, fidelity=0.25) for c in fresh]
        self.proposed += len(out)
        return out

    def tell(self, config: Config, loss: float | None, fidelity: float = 1.0) -> None:
        super().tell(config, loss, fidelity)
        Screening.log.append(("tell", fidelity))

    def state_dict(self) -> dict[str, Any]:
        return {"proposed": self.proposed}

    def load_state(self, state: dict[str, Any]) -> None:
        Screening.log.append(("load", dict(state)))
        self.proposed = int(state["proposed"])
        self.poisoned = bool(state.get("poisoned"))


@pytest.fixture(autouse=True)
def screening() -> Iterator[type[Screening]]:
    Screening.log = []
    Screening.broken = False
    OPTIMIZERS["screening"] = Screening  # registered as the lead will register new ones
    yield Screening
    Screening.broken = False
    del OPTIMIZERS["screening"]


@pytest.fixture
def exp_with(make_experiment: Callable[..., Experiment]) -> Callable[..., Experiment]:
    def make(optimizer: str = "screening", **settings: Any) -> Experiment:
        values: dict[str, Any] = {
            "knobs": NAMES,
            "duration_s": 8.0,
            "budget": 5,
            "parallelism": 1,
            "machine": {"memory_bytes": MACHINE.memory_bytes, "cpus": MACHINE.cpus},
            **settings,
        }
        return make_experiment("fid", optimizer=optimizer, settings=values)

    return make


def test_suggestions_keep_their_fidelity_through_store_lease_and_tell(
    store: Store, exp_with: Callable[..., Experiment]
) -> None:
    exp = exp_with()
    scheduler = Scheduler(store)
    leases: list[Lease] = []
    while (lease := scheduler.lease("a")) is not None:
        leases.append(lease)
        scheduler.report("a", lease.trial_id, lease.lease_id, outcome(lease.config))
    trials = store.trials(exp)
    assert [t.fidelity for t in trials] == [1.0, 0.25, 1.0, 0.25, 1.0]
    assert trials[2].config == trials[1].config  # screened, then promoted to full length
    assert not any(t.repeat for t in trials)
    assert [lease.fidelity for lease in leases] == [1.0, 0.25, 1.0, 0.25, 1.0]
    assert [lease.duration_s for lease in leases] == [8.0, 2.0, 8.0, 2.0, 8.0]
    optimizer = scheduler._cache[exp.id].optimizer
    # Told at each proposal: every trial but the last, which needed no proposal after it.
    assert [f for _, _, f in optimizer.observations_] == [1.0, 0.25, 1.0, 0.25]


def test_pending_trials_reach_suggest_with_their_fidelity(
    store: Store, exp_with: Callable[..., Experiment]
) -> None:
    exp = exp_with(budget=4, parallelism=3)
    scheduler = Scheduler(store)
    held = [scheduler.lease(agent) for agent in ("a", "b", "c")]
    assert all(lease is not None for lease in held)
    optimizer = scheduler._cache[exp.id].optimizer
    assert isinstance(optimizer, Screening)
    (pending,) = optimizer.pending_seen  # one batch: the baseline, then two screening runs
    assert [(p.fidelity, p.repeat) for p in pending] == [(1.0, False)]  # the baseline
    first = held[1]
    assert first is not None
    scheduler.report("b", first.trial_id, first.lease_id, outcome(first.config))
    assert scheduler.lease("b") is not None
    in_flight = optimizer.pending_seen[-1]
    assert sorted(p.fidelity for p in in_flight) == [0.25, 1.0]


def test_optimiser_state_is_saved_and_a_new_scheduler_loads_it_before_the_history(
    store: Store, exp_with: Callable[..., Experiment]
) -> None:
    exp = exp_with(budget=3)
    assert run_all(Scheduler(store)) == 3
    saved = store.require_experiment("fid").optimizer_state
    assert saved == {"proposed": 2}  # the baseline is the scheduler's, not the optimiser's
    store.update_experiment(exp, status="running", budget=5)
    Screening.log = []
    assert run_all(Scheduler(store)) == 2  # a fresh scheduler on the same store
    events = [event for event, _ in Screening.log]
    assert events[:2] == ["init", "load"] and events[2:5] == ["tell", "tell", "tell"]
    assert Screening.log[1] == ("load", {"proposed": 2})
    assert store.require_experiment("fid").optimizer_state == {"proposed": 4}


def test_a_state_that_cannot_be_loaded_is_dropped_not_fatal(
    store: Store, exp_with: Callable[..., Experiment]
) -> None:
    exp = exp_with(budget=2)
    store.save_optimizer_state(exp, {"from": "another version"})  # no "proposed" key
    assert run_all(Scheduler(store)) == 2
    assert store.require_experiment("fid").optimizer_state == {"proposed": 1}


def test_a_state_that_breaks_suggest_is_dropped_and_the_optimiser_rebuilt(
    store: Store, exp_with: Callable[..., Experiment]
) -> None:
    exp = exp_with(budget=3)
    store.save_optimizer_state(exp, {"proposed": 7, "poisoned": True})
    assert run_all(Scheduler(store)) == 3
    assert store.require_experiment("fid").optimizer_state == {"proposed": 2}


def test_a_fault_that_is_not_the_states_is_raised_and_the_state_kept(
    store: Store, exp_with: Callable[..., Experiment], caplog: pytest.LogCaptureFixture
) -> None:
    exp = exp_with(budget=3)
    store.save_optimizer_state(exp, {"proposed": 7})
    scheduler = Scheduler(store)
    first = scheduler.lease("a")  # the baseline: the scheduler's own, no optimiser needed
    assert first is not None
    scheduler.report("a", first.trial_id, first.lease_id, outcome(first.config))
    Screening.broken = True
    with pytest.raises(RuntimeError, match="a bug in suggest"):
        scheduler.lease("a")
    assert store.require_experiment("fid").optimizer_state == {"proposed": 7}
    assert "fails with and without its stored state (a bug in suggest); the state is kept" in (
        caplog.text
    )


def test_an_optimiser_without_state_writes_none(
    store: Store, exp_with: Callable[..., Experiment]
) -> None:
    exp_with(optimizer="random", budget=3)
    run_all(Scheduler(store))
    assert store.require_experiment("fid").optimizer_state is None


# -- run lengths ----------------------------------------------------------------------------


def test_trial_duration_scales_with_a_floor() -> None:
    assert trial_duration_s(30.0, 1.0) == 30.0
    assert trial_duration_s(30.0, 1 / 3) == pytest.approx(10.0)
    assert trial_duration_s(30.0, 0.01) == MIN_TRIAL_S  # 0.3 s measures start-up, not the config
    assert trial_duration_s(0.5, 0.5) == 0.5  # never longer than the full length
    assert trial_duration_s(None, 0.25) is None


def test_without_an_experiment_duration_the_agent_scales_the_workloads_own(
    store: Store,
    exp_with: Callable[..., Experiment],
    make_workload: Callable[..., WorkloadDef],
) -> None:
    exp_with(duration_s=None, budget=2)
    scheduler = Scheduler(store)
    runner = AgentRunner(client=None, make_system=lambda spec: None)  # type: ignore[arg-type]
    runner.workload = make_workload()  # TOY_WORKLOAD: 2 s
    lengths = []
    while (lease := scheduler.lease("a")) is not None:
        assert lease.duration_s is None  # the tuner does not know the workload's length
        lengths.append(runner.duration_for(lease))
        scheduler.report("a", lease.trial_id, lease.lease_id, outcome(lease.config))
    # The baseline runs the workload's own length (None); the screening run a quarter, floored.
    assert lengths == [None, MIN_TRIAL_S]
    runner.workload = make_workload(TOY_60, name="long.yaml")
    short = Lease(1, "0" * 32, 2, {}, False, 60.0, _info(), fidelity=0.25)
    assert runner.duration_for(short) == 15.0


TOY_60 = """\
name: long
system: toy
kind: pgbench
builtin: tpcb-like
duration: 60s
objective: {metric: tps, direction: maximize}
"""


def _info() -> ExperimentInfo:
    return ExperimentInfo(
        name="e", system="toy", spec_content="", spec_path="", spec_hash="", workload_name="w",
        workload_content="", workload_path="", workload_hash="", objective_metric="tps",
        direction="maximize", duration_s=None, knobs=[],
    )  # fmt: skip


# -- the wall-clock budget ------------------------------------------------------------------


def _clock(seconds_ago: float, budget_s: float) -> dict[str, Any]:
    started = now() - timedelta(seconds=seconds_ago)
    return {"time_budget_s": budget_s, "time_budget_from": started.isoformat()}


def test_no_trial_is_proposed_once_the_time_budget_is_spent(
    store: Store, exp_with: Callable[..., Experiment]
) -> None:
    exp = exp_with(optimizer="random", budget=10, **_clock(seconds_ago=60, budget_s=30))
    assert exp.deadline is not None and exp.deadline < now()
    scheduler = Scheduler(store)
    assert scheduler.lease("a") is None
    assert store.trials(exp) == []
    assert store.require_experiment("fid").status == "done"


def test_trials_in_flight_finish_after_the_deadline_then_the_experiment_is_done(
    store: Store, exp_with: Callable[..., Experiment]
) -> None:
    exp = exp_with(optimizer="random", budget=10, parallelism=2, **_clock(0, 600))
    scheduler = Scheduler(store)
    held = [scheduler.lease("a"), scheduler.lease("b")]
    assert all(lease is not None for lease in held)
    store.update_experiment(exp, settings=_clock(seconds_ago=601, budget_s=600))  # time is up
    first, second = held
    assert first is not None and second is not None
    scheduler.report("a", first.trial_id, first.lease_id, outcome(first.config))
    assert scheduler.lease("a") is None  # nothing new
    assert store.require_experiment("fid").status == "running"  # b is still measuring
    scheduler.report("b", second.trial_id, second.lease_id, outcome(second.config))
    assert store.require_experiment("fid").status == "done"
    assert [t.status for t in store.trials(exp)] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("settings", "timed", "short"),
    [
        ({"budget": 45}, True, True),  # wall time, and trials enough to screen
        # 12 search trials, and a screen of one config (3 knobs) needs 13.
        ({"budget": 22, "repeats": 10}, True, False),
        ({"budget": 45}, False, False),  # a trial count alone: every trial runs full length
    ],
)
def test_auto_screens_with_short_runs_only_under_a_time_budget(
    store: Store,
    exp_with: Callable[..., Experiment],
    settings: dict[str, Any],
    timed: bool,
    short: bool,
) -> None:
    # The clock starts here, not at collection: a long suite would spend the budget.
    settings = {**settings, **(_clock(0, 600) if timed else {})}
    exp = exp_with(optimizer="auto", **settings)
    scheduler = Scheduler(store)
    leases = []
    for _ in range(3):
        lease = scheduler.lease("a")
        assert lease is not None
        leases.append(lease)
        scheduler.report("a", lease.trial_id, lease.lease_id, outcome(lease.config))
    assert leases[0].fidelity == 1.0  # the baseline
    expected = [1 / 9, 1 / 9] if short else [1.0, 1.0]
    assert [lease.fidelity for lease in leases[1:]] == pytest.approx(expected)
    assert [t.fidelity for t in store.trials(exp)][1:3] == pytest.approx(expected)
    if short:
        assert all(lease.duration_s == MIN_TRIAL_S for lease in leases[1:])  # 8 s / 9, floored


def test_a_time_budget_set_later_starts_the_screen(
    store: Store, exp_with: Callable[..., Experiment]
) -> None:
    exp = exp_with(optimizer="auto", budget=45)
    scheduler = Scheduler(store)
    lease = scheduler.lease("a")
    assert lease is not None and lease.fidelity == 1.0
    scheduler.report("a", lease.trial_id, lease.lease_id, outcome(lease.config))
    store.update_experiment(exp, settings=_clock(0, 600))  # as the service's PATCH does
    lease = scheduler.lease("a")
    assert lease is not None and lease.fidelity == pytest.approx(1 / 9)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_space_used_up_before_the_budget_ends_the_search_with_a_note(
    store: Store, exp_with: Callable[..., Experiment], parallelism: int
) -> None:
    # One enum knob of three values: three configs, and a budget of eight.
    exp = exp_with(optimizer="random", knobs=["mode"], budget=8, parallelism=parallelism)
    scheduler = Scheduler(store)
    seen = []
    while (lease := scheduler.lease("a")) is not None:
        seen.append(lease.config["mode"])
        done = TrialOutcome(
            status="ok",
            metrics={"tps": 100.0 + len(seen)},
            timings={"measure_s": 1.0, "total_s": 1.0},
            started_at=now(),
            finished_at=now(),
        )
        scheduler.report("a", lease.trial_id, lease.lease_id, done)
    assert sorted(seen) == ["a", "b", "c"]  # each config once, none lost to the batch
    assert store.require_experiment("fid").status == "done"
    [note] = store.analyses(exp, "search")
    assert note.result == {"ended": "exhausted", "trials": 3, "budget": 8}


def test_a_baseline_that_fails_twice_ends_the_search_with_its_error(
    store: Store, exp_with: Callable[..., Experiment]
) -> None:
    exp = exp_with(optimizer="random", budget=6)
    scheduler = Scheduler(store)
    ran = []
    while (lease := scheduler.lease("a")) is not None:
        ran.append(lease.is_baseline)
        broken = TrialOutcome(
            status="failed",
            error="PostgreSQL did not start",
            timings={"total_s": 1.0},
            started_at=now(),
            finished_at=now(),
        )
        scheduler.report("a", lease.trial_id, lease.lease_id, broken)
    assert ran == [True, True]  # retried once, then nothing else is measured against it
    assert store.require_experiment("fid").status == "done"
    [note] = store.analyses(exp, "search")
    assert note.result["ended"] == "baseline failed"
    assert note.result["error"] == "PostgreSQL did not start"
    # A new scheduler (a restarted service) reads the note: still nothing to run.
    assert Scheduler(store).lease("a") is None


@pytest.mark.parametrize(
    ("margin", "floor"),
    [(0.5, -0.5), (0.2, -0.8), (1.0, None), (None, None)],  # None: recorded before margins
)
def test_the_optimiser_is_told_the_floor_once_the_baseline_has_run(
    store: Store,
    exp_with: Callable[..., Experiment],
    margin: float | None,
    floor: float | None,
) -> None:
    settings = {} if margin is None else {"safety_margin": margin}
    exp = exp_with(optimizer="random", budget=3, **settings)
    scheduler = Scheduler(store)
    lease = scheduler.lease("a")
    assert lease is not None
    optimizer = scheduler._cache[exp.id].optimizer
    assert optimizer.floor is None  # no baseline yet: nothing to measure a floor by
    scheduler.report("a", lease.trial_id, lease.lease_id, outcome(lease.config))
    assert scheduler.lease("a") is not None
    base = tps(lease.config)
    assert optimizer.floor == (None if floor is None else pytest.approx(floor * base))
    assert optimizer.safe_centre == lease.config  # the baseline as it ran

"""The session's own verification, as the scheduler runs it: after the search, one run at a
time, in rotating rounds, until the policy stops it; then the experiment is done."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from autotune.agent import TrialOutcome
from autotune.store import Experiment, Store, now
from autotune.tuner import Scheduler, VerifyPolicy, summarize
from tests.unit.tuner.test_tuner import outcome, run_all, sched_exp, tps

__all__ = ["sched_exp"]  # the fixture, used here by name

NO_PGTUNE = VerifyPolicy(pgtune=False, min_rounds=3, max_rounds=6).to_json()


def test_the_search_ends_with_rounds_of_the_default_and_the_two_best(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    sched_exp(budget=6, verify=NO_PGTUNE)
    scheduler = Scheduler(store)
    ran = run_all(scheduler)
    exp = store.require_experiment("exp")
    trials = store.trials(exp)
    search = [t for t in trials if t.phase == "search"]
    verify = [t for t in trials if t.phase == "verify"]
    assert len(search) == 6 and ran == 6 + 3 * 3  # the fake is exact: the minimum rounds
    assert exp.status == "done"
    assert max(t.number for t in search) < min(t.number for t in verify)
    ranked = sorted((t for t in search if not t.is_baseline), key=lambda t: -(t.objective or 0))
    labels = ["default", f"trial {ranked[0].number}", f"trial {ranked[1].number}"]
    assert [(t.round, t.arm) for t in verify] == [
        (1, labels[0]), (1, labels[1]), (1, labels[2]),
        (2, labels[1]), (2, labels[2]), (2, labels[0]),
        (3, labels[2]), (3, labels[0]), (3, labels[1]),
    ]  # fmt: skip
    assert all(not t.is_baseline and not t.repeat for t in verify)
    summary = summarize(store, exp)
    assert summary.trials == 6 and summary.verify_runs == 9
    v = summary.verification
    assert v is not None and v.rounds == 3 and v.stopped == "precision ±3% reached"
    assert v.best is not None and v.best.label == labels[1]
    assert summary.best is not None and summary.best.number == ranked[0].number
    expected = tps(ranked[0].config) / tps(search[0].config)
    assert v.best.versus is not None and math.isclose(v.best.versus.ratio, expected)


def _noisy(config: dict[str, Any], number: int) -> TrialOutcome:
    """tps that wobbles from run to run: no round pins a ratio down to ±3%."""
    result = outcome(config)
    result.metrics["tps"] *= 1 + 0.08 * math.sin(7.0 * number)
    return result


def test_a_noisy_verification_runs_to_the_round_cap(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    sched_exp(budget=4, verify=NO_PGTUNE)
    scheduler = Scheduler(store)
    while (lease := scheduler.lease("a")) is not None:
        scheduler.report("a", lease.trial_id, lease.lease_id, _noisy(lease.config, lease.number))
    exp = store.require_experiment("exp")
    v = summarize(store, exp).verification
    assert v is not None and v.rounds == 6 and v.stopped == "round cap of 6 reached"
    assert exp.status == "done"


def test_verification_runs_one_trial_at_a_time_whatever_the_parallelism(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    sched_exp(budget=4, parallelism=3, verify=NO_PGTUNE)
    scheduler = Scheduler(store)
    searched = 0
    while searched < 4:  # the search runs up to three at a time
        held = [(f"agent-{i}", scheduler.lease(f"agent-{i}")) for i in range(3)]
        taken = [(agent, lease) for agent, lease in held if lease is not None]
        assert taken and all(lease.phase == "search" for _, lease in taken)
        for agent, lease in taken:
            scheduler.report(agent, lease.trial_id, lease.lease_id, outcome(lease.config))
        searched += len(taken)
    first = scheduler.lease("agent-0")
    assert first is not None and first.phase == "verify" and first.round == 1
    assert first.arm == "default" and first.label.startswith("verify round 1: default")
    assert scheduler.lease("agent-1") is None  # the round stays paired: nothing beside it
    scheduler.report("agent-0", first.trial_id, first.lease_id, outcome(first.config))
    second = scheduler.lease("agent-1")
    assert second is not None and second.phase == "verify" and second.number == first.number + 1


def test_past_the_time_budget_the_verification_still_runs_its_minimum_rounds(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    exp = sched_exp(budget=20, verify=VerifyPolicy(pgtune=False, contenders=1).to_json())
    scheduler = Scheduler(store)
    for _ in range(4):
        lease = scheduler.lease("a")
        assert lease is not None
        scheduler.report("a", lease.trial_id, lease.lease_id, _noisy(lease.config, lease.number))
    started = (now() - timedelta(hours=1)).isoformat()
    store.update_experiment(exp, settings={"time_budget_s": 60.0, "time_budget_from": started})
    ran = run_all(scheduler)
    exp = store.require_experiment("exp")
    v = summarize(store, exp).verification
    assert ran == 2 * 3 and v is not None and v.rounds == 3  # no search trial, 3 rounds
    assert exp.status == "done"


def test_without_a_policy_the_session_ends_with_its_search(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    sched_exp(budget=5)
    assert run_all(Scheduler(store)) == 5
    exp = store.require_experiment("exp")
    assert exp.status == "done" and summarize(store, exp).verification is None


def test_on_a_twin_the_default_runs_beside_each_lease_not_as_an_arm(
    store: Store, sched_exp: Callable[..., Experiment]
) -> None:
    twin = VerifyPolicy(pgtune=False, min_rounds=3, max_rounds=6, twin=True).to_json()
    sched_exp(budget=6, verify=twin)
    scheduler = Scheduler(store)
    references = []
    while (lease := scheduler.lease("a")) is not None:
        result = outcome(lease.config)
        if lease.phase == "verify":
            references.append(lease.reference)
            default_tps = tps(store.trials(store.require_experiment("exp"))[0].config)
            result.metrics["reference.objective"] = default_tps  # what the twin measured
        scheduler.report("a", lease.trial_id, lease.lease_id, result)
    exp = store.require_experiment("exp")
    verify = [t for t in store.trials(exp) if t.phase == "verify"]
    assert len(verify) == 2 * 3 and "default" not in {t.arm for t in verify}
    baseline = store.trials(exp)[0]
    assert baseline.is_baseline
    assert references == [baseline.config] * 6  # the default, every knob set, for the twin
    v = summarize(store, exp).verification
    assert v is not None and v.rounds == 3 and v.stopped == "precision ±3% reached"
    assert v.best is not None and v.best.versus is not None and v.best.versus.ratio > 1
    assert exp.status == "done"

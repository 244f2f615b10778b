"""Paired verification: the CI, the stopping rule, the arms and the order of runs."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from scipy import stats

from autotune.spec import Spec
from autotune.store import Trial
from autotune.tuner import (
    Arm,
    VerifyPolicy,
    VerifyRun,
    complete_configs,
    paired_ratio,
    rotation,
    summarize_verification,
)
from autotune.tuner._arms import choose_arms, pgtune_arm, pgtune_db_type
from autotune.tuner._verify import (
    arms_of,
    next_verify_run,
    verify_batch,
    verify_reserve_s,
    verify_runs,
)
from tests.unit._support import T0

# -- the paired CI ------------------------------------------------------------------------------


def test_the_paired_ratio_is_a_t_interval_on_the_per_round_log_ratios() -> None:
    mine, base = [105.0, 212.0, 97.0, 160.0], [100.0, 200.0, 95.0, 150.0]
    logs = [math.log(a / b) for a, b in zip(mine, base, strict=True)]
    mean = sum(logs) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 3)
    half = stats.t.ppf(0.975, 3) * sd / 2
    pr = paired_ratio(mine, base)
    assert pr is not None and pr.pairs == 4
    assert pr.ratio == pytest.approx(math.exp(mean))
    assert pr.low == pytest.approx(math.exp(mean - half))
    assert pr.high == pytest.approx(math.exp(mean + half))
    assert pr.half_width == pytest.approx((pr.high - pr.low) / 2)
    assert pr.significant and pr.low > 1


def test_pairing_cancels_drift_that_swamps_the_gain() -> None:
    # The host drifts 0.7x..1.3x between rounds; within a round the config is 5% better.
    drift = [1.0, 1.3, 0.7, 1.2, 0.8]
    pr = paired_ratio([1050.0 * d for d in drift], [1000.0 * d for d in drift])
    assert pr is not None
    assert pr.ratio == pytest.approx(1.05) and pr.half_width == pytest.approx(0, abs=1e-12)


def test_the_paired_ratio_orients_drops_failed_rounds_and_needs_two_pairs() -> None:
    pr = paired_ratio([8.0, 8.4, None, 7.6, float("nan")], [10.0, 10.0, 9.0, 10.0, 10.0], False)
    assert pr is not None and pr.pairs == 3
    assert pr.ratio == pytest.approx((10 / 8.0 * 10 / 8.4 * 10 / 7.6) ** (1 / 3))
    assert pr.low > 1  # lower latency: better
    assert paired_ratio([1.0, None], [1.0, 1.0]) is None
    assert paired_ratio([0.0, 1.0, -2.0], [1.0, 1.0, 1.0]) is None  # non-positive dropped
    with pytest.raises(ValueError, match="equal lengths"):
        paired_ratio([1.0, 2.0], [1.0])


# -- the order of runs --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_rotation_is_a_latin_square_over_n_rounds(n: int) -> None:
    square = [rotation(n, r) for r in range(n)]
    everyone = list(range(n))
    assert all(sorted(row) == everyone for row in square)  # each round runs every arm once
    for position in range(n):  # and every arm takes every position once
        assert sorted(row[position] for row in square) == everyone
    assert [row[0] for row in square] == everyone  # round r starts with arm r


def _trial(number: int, value: float | None, config: dict[str, Any], **fields: Any) -> Trial:
    return Trial(
        number=number,
        config=config,
        status="ok" if value is not None else "failed",
        objective=value,
        started_at=T0 + timedelta(seconds=10 * number),
        finished_at=T0 + timedelta(seconds=10 * number + 8),
        **fields,
    )


def test_the_next_run_follows_the_rotation_and_a_new_batch_starts_at_round_one() -> None:
    arms = [Arm("default", {}), Arm("trial 2", {"mem": 1}), Arm("pgtune", {"mem": 2})]
    batch: list[Trial] = []
    order = []
    for number in range(10, 16):
        round_, arm = next_verify_run(arms, batch)
        order.append((round_, arm.label))
        batch.append(_trial(number, 1.0, arm.config, phase="verify", round=round_, arm=arm.label))
    assert order == [
        (1, "default"), (1, "trial 2"), (1, "pgtune"),
        (2, "trial 2"), (2, "pgtune"), (2, "default"),
    ]  # fmt: skip
    search = [_trial(1, 100.0, {}, is_baseline=True), _trial(2, 120.0, {"mem": 1})]
    assert verify_batch([*search, *batch]) == batch
    # Searching again after a verification (a resume with more trials): the old one is over.
    later = _trial(16, 130.0, {"mem": 3})
    assert verify_batch([*search, *batch, later]) == []
    runs = verify_runs(batch)
    assert runs[0] == VerifyRun(1, "default", 1.0, None) and len(runs) == 6
    assert [a.label for a in arms_of(list(reversed(batch)))] == ["default", "trial 2", "pgtune"]


# -- the stopping rule ---------------------------------------------------------------------------


def _runs(ratios: list[float | None], arm: str = "best") -> list[VerifyRun]:
    out = []
    for r, ratio in enumerate(ratios, start=1):
        base = 1000.0 * (1 + 0.2 * (r % 2))
        out.append(VerifyRun(r, "default", base))
        out.append(VerifyRun(r, arm, None if ratio is None else base * ratio))
    return out


ARMS = [Arm("default", {}), Arm("best", {"mem": 1})]


def test_it_runs_the_minimum_rounds_whatever_the_precision() -> None:
    policy = VerifyPolicy(precision=0.03, min_rounds=3, max_rounds=10)
    v = summarize_verification(ARMS, _runs([1.10, 1.10]), "maximize", policy)
    assert v.rounds == 2 and v.stopped == ""  # exact, but only two rounds


def test_it_stops_once_the_best_is_known_to_the_precision() -> None:
    policy = VerifyPolicy(precision=0.03, min_rounds=3, max_rounds=10)
    wide = summarize_verification(ARMS, _runs([1.00, 1.12, 1.05]), "maximize", policy)
    assert wide.rounds == 3 and wide.stopped == ""
    assert wide.best is not None and wide.best.versus is not None
    assert wide.best.versus.half_width > 0.03
    tight = summarize_verification(ARMS, _runs([1.05, 1.06, 1.04]), "maximize", policy)
    assert tight.stopped == "precision ±3% reached"
    assert tight.verified and tight.verdict.startswith("verified gain: best is 1.050× the default")


def test_it_stops_at_the_round_cap_and_then_says_keep_the_default() -> None:
    policy = VerifyPolicy(precision=0.01, min_rounds=3, max_rounds=4)
    v = summarize_verification(ARMS, _runs([1.04, 0.95, 1.06, 0.97]), "maximize", policy)
    assert v.rounds == 4 and v.stopped == "round cap of 4 reached"
    assert not v.verified
    assert v.verdict.startswith("no verified gain: keep the default (best is 1.00")


def test_it_does_not_stop_while_pgtune_leads_undecided() -> None:
    """The best known to ±3% is not enough when pgtune is ahead of it with a CI that
    takes in 1: a few more rounds may show a gain the user could take."""
    arms = [*ARMS, Arm("pgtune", {"mem": 2})]
    policy = VerifyPolicy(precision=0.03, min_rounds=3, max_rounds=10)
    best = _runs([0.97, 0.96, 0.98])
    wide = [r for r in _runs([1.08, 0.98, 1.03], "pgtune") if r.arm == "pgtune"]
    v = summarize_verification(arms, best + wide, "maximize", policy)
    assert v.best is not None and v.best.versus is not None
    assert v.best.versus.half_width <= 0.03
    pgtune = v.arm("pgtune")
    assert pgtune is not None and pgtune.versus is not None
    assert pgtune.versus.low <= 1 and pgtune.versus.half_width > 0.03
    assert v.stopped == ""
    # Decided either way, it stops: known to ±3%, a verified gain, or behind the best.
    for theirs in ([1.01, 0.99, 1.00], [1.04, 1.05, 1.04], [0.90, 0.99, 0.80]):
        runs = best + [r for r in _runs(theirs, "pgtune") if r.arm == "pgtune"]
        assert summarize_verification(arms, runs, "maximize", policy).stopped == (
            "precision ±3% reached"
        ), theirs
    # And the round cap still ends it.
    capped = VerifyPolicy(precision=0.03, min_rounds=3, max_rounds=3)
    assert summarize_verification(arms, best + wide, "maximize", capped).stopped == (
        "round cap of 3 reached"
    )


def test_pgtune_verified_ahead_of_the_best_is_said_in_the_verdict() -> None:
    arms = [*ARMS, Arm("pgtune", {"mem": 2})]
    policy = VerifyPolicy(min_rounds=3, max_rounds=3)
    best = _runs([0.97, 0.96, 0.98])
    pgtune = [r for r in _runs([1.04, 1.05, 1.04], "pgtune") if r.arm == "pgtune"]
    v = summarize_verification(arms, best + pgtune, "maximize", policy)
    assert v.verdict.startswith("no verified gain: keep the default (best is 0.970×")
    assert v.verdict.endswith(
        "; but pgtune's config is a verified 1.043× the default (95% CI "
        f"{v.arm('pgtune').versus.low:.3f}–{v.arm('pgtune').versus.high:.3f}), "  # type: ignore[union-attr]
        "ahead of it"
    )
    assert v.pgtune_ahead is v.arm("pgtune").versus  # type: ignore[union-attr]
    # Behind the best, or not a verified gain itself: the verdict is the best's alone.
    for mine, theirs in (
        ([1.05, 1.06, 1.05], [1.01, 1.02, 1.01]),  # a verified gain, behind the best
        ([0.97, 0.96, 0.98], [1.25, 0.90, 1.20]),  # ahead, but its CI takes in 1
    ):
        pgtune = [r for r in _runs(theirs, "pgtune") if r.arm == "pgtune"]
        v = summarize_verification(arms, _runs(mine) + pgtune, "maximize", policy)
        assert "pgtune" not in v.verdict, v.verdict
        assert v.pgtune_ahead is None


def test_an_incomplete_round_does_not_count_and_failed_runs_drop_their_pair() -> None:
    policy = VerifyPolicy(min_rounds=2, max_rounds=10)
    runs = [*_runs([1.10, None, 1.10]), VerifyRun(4, "default", 1000.0)]
    v = summarize_verification(ARMS, runs, "maximize", policy)
    assert v.rounds == 3  # round 4 has no run of "best" yet
    best = v.arm("best")
    assert best is not None and best.failed == 1 and best.runs == 3
    assert best.versus is not None and best.versus.pairs == 2


def test_the_best_is_chosen_among_the_tuned_configs_not_pgtune() -> None:
    arms = [Arm("default", {}), Arm("trial 4", {"mem": 1}), Arm("pgtune", {"mem": 2})]
    runs = []
    for r in range(1, 4):
        runs += [VerifyRun(r, "default", 100.0), VerifyRun(r, "trial 4", 103.0 + r / 10)]
        runs.append(VerifyRun(r, "pgtune", 120.0 + r / 10))
    v = summarize_verification(arms, runs, "maximize", VerifyPolicy())
    assert v.best is not None and v.best.label == "trial 4"
    data = v.to_json()
    assert data["best"] == "trial 4" and data["verified"] is True
    assert [a["label"] for a in data["arms"]] == ["default", "trial 4", "pgtune"]
    assert data["arms"][0]["ratio"] is None and data["arms"][2]["ratio"] > 1.19


def test_the_policy_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="precision"):
        VerifyPolicy(precision=0)
    with pytest.raises(ValueError, match="at least 2 rounds"):
        VerifyPolicy(min_rounds=1)
    with pytest.raises(ValueError, match="below the minimum"):
        VerifyPolicy(min_rounds=5, max_rounds=4)
    policy = VerifyPolicy(precision=0.02, max_rounds=7)
    assert VerifyPolicy.from_json(policy.to_json()) == policy


# -- the arms --------------------------------------------------------------------------------------


def test_complete_configs_sets_every_arms_knobs_so_none_leaks(toy_spec: Spec) -> None:
    arms = [Arm("default", {}), Arm("best", {"mem": 8192, "ratio": 0.9}), Arm("b", {"mode": "b"})]
    assert complete_configs(toy_spec, arms) == [
        {"mem": 4096, "mode": "a", "ratio": 0.5},
        {"mem": 8192, "mode": "a", "ratio": 0.9},
        {"mem": 4096, "mode": "b", "ratio": 0.5},
    ]


def test_the_arms_are_the_default_the_best_search_configs_and_pgtune(toy_spec: Spec) -> None:
    base = {"mem": 4096, "ratio": 0.5, "mode": "a"}
    trials = [
        _trial(1, 100.0, base, is_baseline=True),
        _trial(2, 130.0, {**base, "mem": 8192}),
        _trial(3, 90.0, {**base, "ratio": 0.9}),
        _trial(4, 125.0, {**base, "mode": "b"}),
        _trial(5, None, {**base, "mem": 1024}),  # failed: never a contender
        _trial(6, 500.0, {**base, "mem": 2048}, fidelity=0.25),  # short: not comparable
        _trial(7, 999.0, {**base, "mem": 512}, phase="verify", round=1, arm="x"),
    ]
    arms = choose_arms(trials, "maximize", toy_spec, VerifyPolicy(contenders=2), {"mem": 16384})
    assert [a.label for a in arms] == ["default", "trial 2", "trial 4", "pgtune"]
    assert arms[1].config == {**base, "mem": 8192} and arms[3].config == {**base, "mem": 16384}
    lowest = choose_arms(trials, "minimize", toy_spec, VerifyPolicy(contenders=1))
    assert [a.label for a in lowest] == ["default", "trial 3"]
    # Nothing but the default succeeded: no contender, so no pgtune either.
    assert [a.label for a in choose_arms(trials[:1], "maximize", toy_spec, VerifyPolicy())] == [
        "default"
    ]


def test_pgtune_is_sized_for_the_workload_and_the_target(postgres_spec: Spec) -> None:
    assert pgtune_db_type("kind: pgbench\n") == "oltp"
    assert pgtune_db_type("kind: sql-set\n") == "dw"
    assert pgtune_db_type("kind: command\n") == pgtune_db_type("[: not yaml") == "mixed"
    machine = {"memory_bytes": 8 * 1024**3, "cpus": 4}
    config = pgtune_arm(postgres_spec, machine, "kind: pgbench\n", restartable=True)
    assert config is not None and config["shared_buffers"] == 2 * 1024**3 // 8192
    limited = pgtune_arm(postgres_spec, machine, "kind: pgbench\n", restartable=False)
    assert limited is not None and "shared_buffers" not in limited
    assert all(postgres_spec.knobs[k].apply != "restart" for k in limited)
    assert pgtune_arm(postgres_spec, None, "kind: pgbench\n", restartable=True) is None


def test_pgtune_arm_sets_the_connections_it_sized_work_mem_for(postgres_spec: Spec) -> None:
    machine = {"memory_bytes": 8 * 1024**3, "cpus": 4}
    oltp = pgtune_arm(postgres_spec, machine, "kind: pgbench\n", restartable=True)
    # oltp: 300 connections; (8GB - 2GB) / ((300 + 4) * 3) kB
    assert oltp is not None and oltp["max_connections"] == 300 and oltp["work_mem"] == 6898
    dw = pgtune_arm(postgres_spec, machine, "kind: sql-set\n", restartable=True)
    # dw's own 40 would take connections away from PostgreSQL's 100: sized for 100 instead,
    # (8GB - 2GB) / ((100 + 4) * 3) / 2 kB
    assert dw is not None and dw["max_connections"] == 100 and dw["work_mem"] == 10082
    limited = pgtune_arm(postgres_spec, machine, "kind: pgbench\n", restartable=False)
    assert limited is not None and "max_connections" not in limited  # a restart knob


def test_a_time_budget_keeps_back_the_minimum_rounds() -> None:
    base = {"mem": 1}
    search = [
        _trial(1, 100.0, base, is_baseline=True),
        _trial(2, 110.0, {"mem": 2}),
        _trial(3, 120.0, {"mem": 3}),
        _trial(4, 130.0, {"mem": 4}),
    ]
    policy = VerifyPolicy(min_rounds=3, contenders=2, pgtune=True)
    assert verify_reserve_s(policy, search) == pytest.approx(4 * 3 * 8.0)  # 4 arms, 8 s each
    assert verify_reserve_s(VerifyPolicy(pgtune=False, contenders=5), search) == pytest.approx(
        (1 + 3) * 3 * 8.0
    )
    assert verify_reserve_s(policy, []) == 0.0


def test_on_a_twin_each_run_is_paired_with_the_default_measured_beside_it() -> None:
    """No default arm of its own: each run's ratio is read within it, so a host that
    swings 30% between the runs of one round does not move the ratios at all."""
    arms = [Arm("default", {}), Arm("best", {"mem": 1}), Arm("pgtune", {"mem": 2})]
    runs = []
    for r in (1, 2, 3, 4):
        for i, (arm, ratio) in enumerate((("best", 1.05), ("pgtune", 0.98))):
            level = 1000.0 * (1 + 0.3 * ((r + i) % 2))  # each run at its own host level
            runs.append(VerifyRun(r, arm, level * ratio, reference=level))
    policy = VerifyPolicy(precision=0.03, min_rounds=3, max_rounds=10, twin=True)
    v = summarize_verification(arms, runs, "maximize", policy)
    assert v.rounds == 4 and v.stopped == "precision ±3% reached"
    by = {a.label: a for a in v.arms}
    assert by["best"].versus is not None and by["best"].versus.ratio == pytest.approx(1.05)
    assert by["best"].versus.half_width == pytest.approx(0.0, abs=1e-9)
    assert by["pgtune"].versus is not None and by["pgtune"].versus.ratio == pytest.approx(0.98)
    # The default's row is what ran beside the others: one value per run, none of its own.
    assert len(by["default"].values) == 8 and by["default"].versus is None
    assert v.verified and v.verdict.startswith("verified gain: best is 1.050× the default")


def test_a_baseline_as_found_is_the_reference_and_the_spec_defaults_a_yardstick(
    toy_spec: Spec,
) -> None:
    # The target ran mem=2048 before the session (an existing server, a host): the
    # baseline measured that, so it is what every arm is compared with.
    found = {"mem": 2048, "ratio": 0.5, "mode": "a"}
    trials = [
        _trial(1, 100.0, found, is_baseline=True),
        _trial(2, 130.0, {**found, "mem": 8192}),
    ]
    arms = choose_arms(trials, "maximize", toy_spec, VerifyPolicy(contenders=1))
    assert [a.label for a in arms] == ["default", "trial 2", "spec defaults"]
    assert arms[0].config == found and "ran at start" in arms[0].note
    assert arms[2].config == {"mem": 4096, "ratio": 0.5, "mode": "a"}
    runs = []
    for r in range(1, 4):
        runs += [VerifyRun(r, "default", 100.0), VerifyRun(r, "trial 2", 101.0 + r / 100)]
        runs.append(VerifyRun(r, "spec defaults", 140.0 + r / 10))
    v = summarize_verification(arms, runs, "maximize", VerifyPolicy())
    # The spec's defaults are measured, never recommended: the best is the tuned config.
    assert v.best is not None and v.best.label == "trial 2"
    assert (
        v.verdict.startswith("verified gain: trial 2 is 1.0")
        and "× the current config" in v.verdict
    )
    slow = [VerifyRun(r.round, r.arm, 99.0 + r.round / 10 if r.arm == "trial 2" else r.value)
            for r in runs]  # fmt: skip
    assert (
        "no verified gain: keep the current config"
        in summarize_verification(arms, slow, "maximize", VerifyPolicy()).verdict
    )
    # A baseline at the spec's defaults: no second yardstick, the verdict says "default".
    plain = choose_arms(
        [_trial(1, 100.0, {"mem": 4096, "ratio": 0.5, "mode": "a"}, is_baseline=True), trials[1]],
        "maximize",
        toy_spec,
        VerifyPolicy(contenders=1),
    )
    assert [a.label for a in plain] == ["default", "trial 2"]
    assert (
        "× the default" in summarize_verification(plain, runs, "maximize", VerifyPolicy()).verdict
    )

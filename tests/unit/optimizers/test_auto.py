"""The auto optimiser: GP-Hedge over EI, PI, UCB and a random forest."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from autotune.optimizers import (
    OPTIMIZERS,
    AutoOptimizer,
    GPOptimizer,
    RandomOptimizer,
    make_optimizer,
)
from autotune.optimizers.auto import ARMS as DEFAULT_ARMS
from autotune.optimizers.auto import NOISE_PRIOR
from autotune.space import Space
from autotune.spec import Config, Spec
from tests.unit._support import MACHINE

pytestmark = pytest.mark.usefixtures("one_blas_thread")

FAST = {"n_candidates": 100, "n_local": 25}
ARMS = ["ei", "pi", "ucb", "rf"]  # every arm there is; most tests ask for all of them

QUADRATIC = """\
system: quadratic
knobs:
  x: {type: real, min: 0, max: 10, default: 0}
  y: {type: real, min: 0, max: 10, default: 0}
"""


@pytest.fixture
def space(make_spec: Callable[..., Spec]) -> Space:
    return Space(make_spec(QUADRATIC), ["x", "y"], MACHINE)


def bowl(config: Config) -> float:
    """Minimum 0 at (7, 3); the default (0, 0) scores 58."""
    return (float(config["x"]) - 7) ** 2 + (float(config["y"]) - 3) ** 2


def auto(space: Space, seed: int = 0, **kwargs: Any) -> AutoOptimizer:
    return AutoOptimizer(space, seed=seed, **{**FAST, "arms": ARMS, **kwargs})


def warm_up(opt: AutoOptimizer) -> None:
    """The baseline and the design: the next ask is the first the portfolio makes."""
    config = opt.space.default()
    opt.tell(config, bowl(config))
    while len(opt.history_) < opt.n_init:
        (config,) = opt.ask(1)
        opt.tell(config, bowl(config))
    assert sum(opt.picks.values()) == 0


def best_after(opt: Any, budget: int = 20) -> float:
    config = opt.space.default()
    best = bowl(config)
    opt.tell(config, best)
    for _ in range(budget - 1):
        (config,) = opt.ask(1)
        value = bowl(config)
        opt.tell(config, value)
        best = min(best, value)
    return best


def test_auto_is_registered(space: Space) -> None:
    assert OPTIMIZERS["auto"] is AutoOptimizer
    opt = make_optimizer("auto", space, seed=4)
    assert type(opt) is AutoOptimizer
    assert opt.seed == 4 and opt.space is space
    assert opt.arms == list(DEFAULT_ARMS)
    assert set(opt.arms) <= set(ARMS)
    assert opt.picks == dict.fromkeys(DEFAULT_ARMS, 0)
    assert AutoOptimizer(space, arms=("ucb", "ei")).arms == ["ucb", "ei"]


@pytest.mark.parametrize("arms", [("ei", "thompson"), ()])
def test_unknown_or_no_arms_raise(arms: tuple[str, ...], space: Space) -> None:
    with pytest.raises(ValueError, match="thompson" if arms else "arms"):
        AutoOptimizer(space, arms=arms)


def test_each_ask_picks_one_arm_and_counts_it(space: Space) -> None:
    opt = auto(space)
    warm_up(opt)
    for round_ in range(1, 5):
        before = dict(opt.picks)
        (config,) = opt.ask(1)
        arm = opt.last_arm
        assert arm in ARMS
        assert opt.picks[arm] == before[arm] + 1
        assert sum(opt.picks.values()) == round_
        # the config asked for is the picked arm's nominee
        assert opt.nominees[arm] == config
        assert set(opt.nominees) <= set(ARMS)
        opt.tell(config, bowl(config))


def test_gains_credit_every_nominee_with_minus_the_refreshed_posterior_mean(space: Space) -> None:
    opt = auto(space)
    warm_up(opt)
    (config,) = opt.ask(1)
    assert np.all(opt.gains == 0)  # nothing nominated before this round
    nominees = dict(opt.nominees)
    assert set(nominees) == set(ARMS)  # every arm nominated, the forest included
    opt.tell(config, bowl(config))

    opt.ask(1)
    assert not np.all(opt.gains == 0)
    model = opt.model_  # the model this round was fitted with, which scored the nominees
    assert model is not None
    mean, _ = model.predict(space.encode_many([nominees[a] for a in ARMS]))
    np.testing.assert_allclose(opt.gains, -mean)


def test_gains_decide_which_arm_is_picked(space: Space) -> None:
    opt = auto(space)
    warm_up(opt)
    opt.load_state({"gains": [0.0, 0.0, 60.0, 0.0]})  # exp(-60): the others never win
    opt.ask(1)
    assert opt.last_arm == "ucb"
    # without the forest, an rf-sized state no longer fits and is ignored
    small = auto(space, arms=("ei", "pi", "ucb"))
    small.load_state({"gains": [0.0, 0.0, 60.0, 0.0]})
    assert np.all(small.gains == 0)


def test_without_the_forest_rf_is_never_picked(space: Space) -> None:
    opt = auto(space, arms=("ei", "pi", "ucb"))
    warm_up(opt)
    for _ in range(3):
        (config,) = opt.ask(1)
        opt.tell(config, bowl(config))
        assert opt.last_arm in ("ei", "pi", "ucb")
    assert "rf" not in opt.picks and "rf" not in opt.nominees


def test_state_is_json_and_round_trips(space: Space) -> None:
    opt = auto(space)
    warm_up(opt)
    for _ in range(3):
        (config,) = opt.ask(1)
        opt.tell(config, bowl(config))
    state = json.loads(json.dumps(opt.state_dict()))
    assert set(state) >= {"theta", "gains", "nominees", "picks"}
    assert sum(state["picks"].values()) == 3

    fresh = auto(space)
    fresh.load_state(state)
    np.testing.assert_allclose(fresh.gains, opt.gains)
    assert fresh.nominees == opt.nominees
    assert fresh.picks == opt.picks
    assert fresh._theta is not None and opt._theta is not None
    np.testing.assert_allclose(fresh._theta, opt._theta)
    for config, loss in opt.history_:
        fresh.tell(config, loss)
    # the next round credits the restored nominees, as the original would have
    (config,) = fresh.ask(1)
    assert fresh.model_ is not None
    mean, _ = fresh.model_.predict(space.encode_many([state["nominees"][a] for a in ARMS]))
    np.testing.assert_allclose(fresh.gains, np.asarray(state["gains"]) - mean)
    assert sum(fresh.picks.values()) == 4
    assert space.key(config) not in opt.seen()


BOGUS: list[Any] = [
    {"gains": [1.0, 2.0]},  # wrong length
    {"gains": [1.0] * 7},
    {"gains": "high"},
    {"nominees": {"thompson": {"x": 1.0, "y": 2.0}}},  # unknown arm
    {"nominees": {"ei": {"x": 1.0}}},  # missing key
    {"nominees": {"ei": {"x": 1.0, "y": 2.0, "z": 3.0}}},  # extra key
    {"nominees": {"ei": [1.0, 2.0]}},
    {"nominees": ["ei"]},
    {"picks": {"thompson": 5}},  # unknown arm
    {"picks": [1, 2, 3, 4]},
    {"theta": [0.0]},
]


@pytest.mark.parametrize("state", BOGUS)
def test_bogus_state_is_ignored(state: dict[str, Any], space: Space) -> None:
    opt = auto(space)
    opt.load_state(state)
    assert np.all(opt.gains == 0)
    assert opt.nominees == {}
    assert opt.picks == dict.fromkeys(ARMS, 0)
    assert opt._theta is None
    assert best_after(opt, budget=6) < bowl(space.default())  # and it still works


def test_valid_parts_of_a_state_survive_bogus_ones(space: Space) -> None:
    opt = auto(space)
    opt.load_state(
        {
            "gains": [1.0, 2.0],
            "nominees": {"ei": {"x": 1.0, "y": 2.0}, "nope": {"x": 1.0, "y": 2.0}},
            "picks": {"pi": 3, "nope": 9},
        }
    )
    assert np.all(opt.gains == 0)
    assert opt.nominees == {"ei": {"x": 1.0, "y": 2.0}}
    assert opt.picks == {"ei": 0, "pi": 3, "ucb": 0, "rf": 0}


@pytest.mark.parametrize(
    "state",
    [
        pytest.param({"gains": [None, None, None, None]}, id="null-gains"),
        pytest.param({"nominees": {"ei": {"x": "zzz", "y": 1.0}}}, id="nominee-bad-value"),
    ],
)
def test_a_state_load_state_accepts_does_not_break_asking(
    state: dict[str, Any], space: Space
) -> None:
    opt = auto(space)
    try:
        opt.load_state(state)
    except (TypeError, ValueError):
        return  # refusing it is fine: the scheduler rebuilds the optimiser
    best_after(opt, budget=6)


@pytest.mark.parametrize(
    "state",
    [{"gains": ["a", "b", "c", "d"]}, {"picks": {"ei": "many"}}, {"picks": {"ei": None}}],
)
def test_badly_typed_state_is_refused_or_ignored(state: dict[str, Any], space: Space) -> None:
    opt = auto(space)
    try:
        opt.load_state(state)
    except (TypeError, ValueError):
        return  # the scheduler turns this into a rebuild from the trials
    assert np.all(opt.gains == 0) and opt.picks == dict.fromkeys(ARMS, 0)


def test_auto_beats_random_on_a_smooth_loss(space: Space) -> None:
    seeds = range(3)
    ours = [best_after(AutoOptimizer(space, seed=s, **FAST)) for s in seeds]  # default arms
    rnd = [best_after(RandomOptimizer(space, seed=s)) for s in seeds]
    # random's median is ~0.5 here, auto's ~0.01
    assert statistics.median(ours) < statistics.median(rnd) / 5, (ours, rnd)
    assert statistics.median(ours) < 0.2, ours


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda space: auto(space), NOISE_PRIOR),
        (lambda space: auto(space, noise_prior=None), None),
        (lambda space: auto(space, noise_prior=(-3.0, 0.5)), (-3.0, 0.5)),
        (lambda space: GPOptimizer(space, seed=0, **FAST), None),
    ],
    ids=["auto", "auto-without", "auto-custom", "gp"],
)
def test_the_model_is_fitted_with_the_optimisers_noise_prior(
    make: Callable[[Space], GPOptimizer], expected: object, space: Space
) -> None:
    opt = make(space)
    config = space.default()
    opt.tell(config, bowl(config))
    while len(opt.history_) < opt.n_init + 1:
        (config,) = opt.ask(1)
        opt.tell(config, bowl(config))
    assert opt.model_ is not None
    assert opt.model_.noise_prior == expected


# -- the opening screen ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("trials", "timed", "screen", "short"),
    [
        (None, True, 3, True),  # wall time only: no count to run out of
        (39, True, 3, True),  # 13 trials per config carried to full length
        (38, True, 3, False),  # the count cannot pay for the screen
        (100, False, 3, False),  # a trial count prices a short run as a whole trial
        (None, True, 0, False),  # no screen asked for
    ],
)
def test_short_runs_only_when_time_is_the_budget_and_the_count_pays(
    space: Space, trials: int | None, timed: bool, screen: int, short: bool
) -> None:
    opt = auto(space, screen=screen)
    assert opt.short_runs is False  # until the tuner says otherwise
    opt.plan_budget(trials, timed)
    assert opt.short_runs is short
    opt.tell(space.default(), bowl(space.default()))
    (first,) = opt.suggest(1)
    assert first.fidelity == (pytest.approx(1 / 9) if short else 1.0)


@pytest.mark.parametrize(("n_init", "screen"), [(3, 1), (5, 1), (6, 2), (10, 3)])
def test_by_default_the_screen_costs_what_the_design_would(
    space: Space, n_init: int, screen: int
) -> None:
    opt = auto(space, n_init=n_init)
    assert opt.screen == screen  # 3 full runs' time per config: about n_init full runs
    opt.plan_budget(13 * screen, timed=True)
    assert opt.short_runs
    opt.plan_budget(13 * screen - 1, timed=True)
    assert not opt.short_runs


def test_a_negative_screen_is_refused(space: Space) -> None:
    with pytest.raises(ValueError, match="screen"):
        auto(space, screen=-1)


def test_the_screen_ends_once_enough_configs_ran_full_length(space: Space) -> None:
    opt = auto(space, screen=2)
    opt.plan_budget(None, timed=True)
    opt.tell(space.default(), bowl(space.default()))
    fidelities = []
    while opt.screening():
        (s,) = opt.suggest(1)
        fidelities.append(s.fidelity)
        opt.tell(s.config, bowl(s.config), s.fidelity)
        assert len(fidelities) < 60, "the screen never ended"
    full = {space.key(c) for c, _, f in opt.observations_ if f == 1.0}
    assert len(full) == 3  # the baseline and two promoted configs
    assert min(fidelities) == pytest.approx(1 / 9)
    assert fidelities.count(1.0) == 2  # each promoted config ran full length once
    # Hyperband's promotions: a config reaches full length only after a third-length run.
    for config in full - {space.key(space.default())}:
        runs = sorted(f for c, _, f in opt.observations_ if space.key(c) == config)
        assert runs == pytest.approx([1 / 9, 1 / 3, 1.0])
    seen = opt.seen()
    for _ in range(3):
        (s,) = opt.suggest(1)
        assert s.fidelity == 1.0 and space.key(s.config) not in seen
        opt.tell(s.config, bowl(s.config), s.fidelity)
    assert sum(opt.picks.values()) > 0  # the portfolio took over


def test_a_configs_shorter_runs_give_way_to_its_longest(space: Space) -> None:
    opt = auto(space)
    a, b, c = ({"x": float(v), "y": 1.0} for v in (1, 2, 3))
    opt.tell(a, 5.0, 1 / 9)
    opt.tell(b, 7.0, 1 / 9)
    opt.tell(a, 9.0, 1 / 3)
    opt.tell(c, 4.0)
    opt.tell(c, 6.0)  # a repeat at full length stays: it teaches the noise
    data = opt._training_data()
    assert data is not None
    X, y, failed = data
    # a's 1/9 run is dropped, b's only (short) run kept, both of c's full runs kept.
    np.testing.assert_array_equal(X, space.encode_many([b, a, c, c]))
    assert not failed.any()
    # The transform is monotone: the order of the kept losses (7, 9, 4, 6) survives.
    assert list(np.argsort(y)) == [2, 3, 0, 1]


def test_with_every_run_full_length_the_data_is_the_gps(space: Space) -> None:
    opt, gp = auto(space), GPOptimizer(space, **FAST)
    for x in (1.0, 2.0, 2.0, 4.0):
        for o in (opt, gp):
            o.tell({"x": x, "y": 1.0}, x * x)
        for o in (opt, gp):
            o.tell({"x": x + 0.5, "y": 2.0}, None)
    mine, theirs = opt._training_data(), gp._training_data()
    assert mine is not None and theirs is not None
    for m, t in zip(mine, theirs, strict=True):
        np.testing.assert_array_equal(m, t)


def test_past_full_length_trials_such_as_a_warm_start_skip_the_screen(space: Space) -> None:
    opt = auto(space)  # two knobs: a screen of one config
    opt.plan_budget(None, timed=True)
    opt.tell({"x": 1.0, "y": 1.0}, 37.0)  # as the scheduler tells a warm start's trials
    assert opt.screening()  # one full-length config is only the baseline's share
    opt.tell({"x": 6.0, "y": 2.0}, 2.0)
    assert not opt.screening()
    (s,) = opt.suggest(1)
    assert s.fidelity == 1.0

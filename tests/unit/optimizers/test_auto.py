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

"""The SMAC-style random-forest optimiser: its model, its search, and that it helps."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import numpy as np
import pytest

from autotune.optimizers import OPTIMIZERS, ForestOptimizer, RandomOptimizer
from autotune.optimizers._base import failure_penalty
from autotune.optimizers.lhs import lhs_design
from autotune.space import Space
from autotune.spec import Config, Spec
from tests.unit._support import MACHINE

pytestmark = pytest.mark.usefixtures("one_blas_thread")

NAMES = ["buffers", "mem", "ratio", "cost", "workers", "flush", "auto", "mode", "jit"]


@pytest.fixture
def space(toy_spec: Spec) -> Space:
    return Space(toy_spec, NAMES, MACHINE)


def test_registered() -> None:
    assert OPTIMIZERS["rf"] is ForestOptimizer


def test_failure_penalty_is_worse_than_the_worst_seen() -> None:
    assert failure_penalty([1.0, 3.0]) == 5.0  # worst + (worst - best)
    assert failure_penalty([-100.0, -90.0]) == -80.0
    assert failure_penalty([2.0, 2.0]) == pytest.approx(2.2)  # worst + 10% when all agree
    assert failure_penalty([0.0]) > 0.0


def test_training_set_is_capped(space: Space) -> None:
    opt = ForestOptimizer(space, seed=0, max_train=60)
    configs = space.sample(np.random.default_rng(0), 150)
    for i, config in enumerate(configs):
        opt.tell(config, float(i))
    data = opt._training_data()
    assert data is not None
    X, y = data
    assert X.shape == (60, space.n_features)
    assert y.min() == 0.0  # the best observation is always kept
    (config,) = opt.ask(1)
    assert space.is_valid(config)


def test_the_design_comes_first(space: Space) -> None:
    opt = ForestOptimizer(space, seed=4)
    baseline = space.default()
    opt.tell(baseline, 1.0)
    design = lhs_design(space, opt.n_init, 4)
    asked = opt.ask(opt.n_init - 1)
    assert asked[: len(design) - 1] == design[1:]  # the design drops invalid points
    assert opt.model_ is None


def test_the_model_takes_over_after_the_design(space: Space) -> None:
    opt = ForestOptimizer(space, seed=0, random_fraction=0.0)
    for _ in range(opt.n_init + 1):
        (config,) = opt.ask(1)
        opt.tell(config, float(config["ratio"]))
    assert opt.model_ is not None
    assert len(opt.model_.estimators_) == opt.n_trees


def test_random_fraction_one_never_uses_the_model(space: Space) -> None:
    opt = ForestOptimizer(space, seed=0, random_fraction=1.0)
    for _ in range(15):
        (config,) = opt.ask(1)
        opt.tell(config, float(config["ratio"]))
    assert opt.model_ is None
    with pytest.raises(ValueError, match="random_fraction"):
        ForestOptimizer(space, random_fraction=1.5)


# -- behaviour on synthetic problems ----------------------------------------------------

CLIFF = """\
system: cliff
knobs:
  x: {type: real, min: 0, max: 1, default: 0.1}
  y: {type: real, min: 0, max: 1, default: 0.5}
  z: {type: real, min: 0, max: 1, default: 0.5}
"""


def cliff_loss(config: Config) -> float | None:
    """Better and better as x grows, until the server fails to start at x > 0.5."""
    if config["x"] > 0.5:
        return None
    return -float(config["x"]) + (float(config["y"]) - 0.5) ** 2


def failure_rate(opt: ForestOptimizer, budget: int = 30) -> float:
    config = opt.space.default()
    opt.tell(config, cliff_loss(config))
    failed = []
    for i in range(budget - 1):
        (config,) = opt.ask(1)
        loss = cliff_loss(config)
        opt.tell(config, loss)
        if i >= opt.n_init:
            failed.append(loss is None)
    return float(np.mean(failed))


def test_failures_steer_the_forest_away(make_spec: Callable[..., Spec]) -> None:
    space = Space(make_spec(CLIFF), ["x", "y", "z"], MACHINE)
    learned = [failure_rate(ForestOptimizer(space, seed=s)) for s in range(3)]
    blind = [failure_rate(ForestOptimizer(space, seed=s, random_fraction=1.0)) for s in range(3)]
    # Random configs fail half the time; the forest learns the cliff from the penalties
    # (its 20% interleaved random configs still fail half the time).
    assert np.mean(blind) > 0.4, blind
    assert np.mean(learned) < 0.35, learned
    assert np.mean(learned) < np.mean(blind) - 0.15, (learned, blind)


WEDGE = """\
system: wedge
knobs:
  x: {type: real, min: 0, max: 10, default: 1}
  y: {type: real, min: 0, max: 10, default: 1}
  m: {type: enum, values: [a, b], default: a}
constraints:
  - x + y <= 5
"""


def test_constraint_violations_are_never_returned(make_spec: Callable[..., Spec]) -> None:
    """Only an eighth of the box is valid and the loss pulls to the boundary."""
    space = Space(make_spec(WEDGE), ["x", "y", "m"], MACHINE)
    opt = ForestOptimizer(space, seed=0)
    opt.tell(space.default(), -2.0)
    for _ in range(10):
        batch = opt.ask(3, pending=space.sample(opt.rng, 1))
        assert len({space.key(c) for c in batch}) == 3
        for config in batch:
            assert space.is_valid(config), config
            opt.tell(config, -(config["x"] + config["y"]))
    best = min(loss for _, loss in opt.history_ if loss is not None)
    assert best < -4.5  # it found the boundary


def test_batches_spread_and_avoid_pending(space: Space) -> None:
    opt = ForestOptimizer(space, seed=2, random_fraction=0.0)
    rng = np.random.default_rng(0)
    for config in space.sample(rng, 20):
        opt.tell(config, float(math.log2(config["mem"])))
    pending = space.sample(rng, 2)
    batch = opt.ask(4, pending=pending)
    keys = {space.key(c) for c in batch}
    assert len(keys) == 4
    assert not keys & ({space.key(c) for c in pending} | opt.seen())
    X = space.encode_many(batch)
    gaps = [np.linalg.norm(X[i] - X[j]) for i in range(4) for j in range(i)]
    assert min(gaps) > 0.05, gaps  # not four copies of the same local move


def test_same_seed_same_configs_with_batches(space: Space) -> None:
    def run(seed: int) -> list[Config]:
        opt = ForestOptimizer(space, seed=seed)
        out = []
        for i in range(6):
            batch = opt.ask(2, pending=out[-1:])
            out += batch
            for j, config in enumerate(batch):
                opt.tell(config, None if i == j == 3 else float(config["ratio"]))
        return out

    first = run(1)
    assert run(1) == first
    assert run(2) != first


def db_loss(config: Config) -> float | None:
    """Like tuning a database: two memory knobs and one switch matter, the rest barely,
    and too much memory per sort makes the server fail."""
    if config["mem"] > 64 * 1024:  # kB
        return None
    b, m = math.log2(config["buffers"]), math.log2(config["mem"])
    tps = 1000 - 20 * (b - 16) ** 2 - 10 * (m - 14) ** 2 + (0 if config["jit"] else 50)
    return -(tps + 5 * float(config["ratio"]))


def best_after(opt: ForestOptimizer | RandomOptimizer, budget: int = 25) -> float:
    config = opt.space.default()
    loss = db_loss(config)
    assert loss is not None
    best = loss
    opt.tell(config, loss)
    for _ in range(budget - 1):
        (config,) = opt.ask(1)
        loss = db_loss(config)
        opt.tell(config, loss)
        if loss is not None:
            best = min(best, loss)
    return best


def test_forest_beats_random_on_the_median_over_seeds(space: Space) -> None:
    seeds = range(5)
    forest = [best_after(ForestOptimizer(space, seed=s)) for s in seeds]
    rnd = [best_after(RandomOptimizer(space, seed=s)) for s in seeds]
    assert statistics.median(forest) < statistics.median(rnd), (forest, rnd)
    assert sum(f < r for f, r in zip(forest, rnd, strict=True)) >= 3, (forest, rnd)

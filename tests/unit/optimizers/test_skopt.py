"""scikit-optimize adapters: the dimension mapping, failures, constraints, batches."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from skopt.space import Categorical, Integer, Real

from autotune.optimizers import OPTIMIZERS, SkoptForest, SkoptGP
from autotune.optimizers.skopt import from_skopt_point, skopt_dimensions, to_skopt_point
from autotune.space import Space
from autotune.spec import Config, Spec, Value
from tests.unit._support import MACHINE

pytestmark = pytest.mark.usefixtures("one_blas_thread")

NAMES = ["buffers", "mem", "ratio", "cost", "workers", "flush", "auto", "mode", "jit"]


@pytest.fixture
def space(toy_spec: Spec) -> Space:
    return Space(toy_spec, NAMES, MACHINE)


def test_registered() -> None:
    assert OPTIMIZERS["skopt-gp"] is SkoptGP
    assert OPTIMIZERS["skopt-rf"] is SkoptForest
    assert "skopt-gbrt" not in OPTIMIZERS  # GBRT breaks on numpy 2.4


def test_dimensions_follow_the_knobs(space: Space) -> None:
    dims = {d.name: d for d in skopt_dimensions(space)}
    assert list(dims) == NAMES
    knobs = {k.name: k for k in space.knobs}

    buffers = dims["buffers"]
    assert isinstance(buffers, Integer)
    assert buffers.prior == "log-uniform"
    assert (buffers.low, buffers.high) == (knobs["buffers"].min, knobs["buffers"].max)

    workers = dims["workers"]
    assert isinstance(workers, Integer)
    assert workers.prior == "uniform"
    assert (workers.low, workers.high) == (0, 8)  # 2x cpus on the 4-CPU test machine

    assert isinstance(dims["ratio"], Real)
    assert dims["ratio"].prior == "uniform"
    assert isinstance(dims["cost"], Real)
    assert dims["cost"].prior == "log-uniform"
    assert (dims["cost"].low, dims["cost"].high) == (0.01, 100.0)

    assert isinstance(dims["mode"], Categorical)
    assert list(dims["mode"].categories) == ["a", "b", "c"]
    assert isinstance(dims["jit"], Categorical)
    assert list(dims["jit"].categories) == [False, True]


def test_numeric_dimensions_transform_within_their_bounds(space: Space) -> None:
    """skopt 0.10.2's default transform for a log-uniform Integer reports raw bounds
    for log10 values, which clipped every forest proposal to the upper bound."""
    for dim in skopt_dimensions(space):
        if isinstance(dim, Integer | Real):
            lo, hi = dim.transformed_bounds
            t = dim.transform([dim.low, dim.high])
            assert lo <= min(t) and max(t) <= hi, dim


def test_forest_proposals_are_not_pinned_to_the_bounds(make_spec: Callable[..., Spec]) -> None:
    spec = make_spec(
        "system: s\nknobs:\n"
        "  a: {type: integer, min: 100, max: 100000, default: 1000, scale: log}\n"
        "  b: {type: real, min: 0, max: 1, default: 0.5}\n"
    )
    space = Space(spec, ["a", "b"], MACHINE)
    opt = SkoptForest(space, seed=0, n_trees=10, n_candidates=300, n_init=3)
    for config in space.sample(np.random.default_rng(0), 6):
        opt.tell(config, abs(math.log10(config["a"]) - 3.5))
    asked = [c["a"] for c in opt.ask(3)]
    assert all(a < 100000 for a in asked), asked


def test_a_knob_with_one_value_is_a_single_category(make_spec: Callable[..., Spec]) -> None:
    spec = make_spec(
        "system: s\nknobs:\n  a: {type: integer, min: 3, max: 3, default: 3}\n"
        "  b: {type: real, min: 0.5, max: 0.5, default: 0.5}\n"
        "  c: {type: real, min: 0, max: 1, default: 0.5}\n"
    )
    space = Space(spec, ["a", "b", "c"], MACHINE)
    a, b, _ = skopt_dimensions(space)
    assert isinstance(a, Categorical) and list(a.categories) == [3]
    assert isinstance(b, Categorical) and list(b.categories) == [0.5]
    config = {"a": 3, "b": 0.5, "c": 0.25}
    assert from_skopt_point(space, to_skopt_point(space, config)) == config


def test_round_trip_config_point_config(space: Space) -> None:
    rng = np.random.default_rng(0)
    sk = skopt_space(space)
    for _ in range(200):
        config = space.from_unit(rng.random(len(space)))  # no special values
        point = to_skopt_point(space, config)
        assert point in sk
        back = from_skopt_point(space, point)
        assert back == config
        assert [type(v) for v in back.values()] == [type(v) for v in config.values()]


def skopt_space(space: Space) -> Any:
    from skopt.space import Space as SkSpace

    return SkSpace(skopt_dimensions(space))


def test_points_from_skopt_become_valid_native_configs(space: Space) -> None:
    for point in skopt_space(space).rvs(100, random_state=1):
        config = from_skopt_point(space, point)
        for knob in space.knobs:
            value = config[knob.name]
            assert knob.validate(value) == value
            assert (
                type(value) is {"integer": int, "real": float, "enum": str, "bool": bool}[knob.type]
            )
        # reals are rounded as Space does: four significant digits
        assert config["ratio"] == float(f"{config['ratio']:.4g}")
        assert config["cost"] == float(f"{config['cost']:.4g}")


def test_special_values_outside_the_bounds_are_clamped(space: Space) -> None:
    config = space.default()  # flush=0 and auto=-1 are special values below min
    point = dict(zip(NAMES, to_skopt_point(space, config), strict=True))
    assert point["flush"] == 1  # 8kB, the bound
    assert point["auto"] == 1
    assert list(point.values()) in skopt_space(space)


# -- behaviour -------------------------------------------------------------------------

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


def test_failures_steer_skopt_away(make_spec: Callable[..., Spec]) -> None:
    space = Space(make_spec(CLIFF), ["x", "y", "z"], MACHINE)
    rates = []
    for seed in range(2):
        opt = SkoptForest(space, seed=seed, n_trees=20, n_candidates=500)
        config = space.default()
        opt.tell(config, cliff_loss(config))
        failed = []
        for i in range(24):
            (config,) = opt.ask(1)
            loss = cliff_loss(config)
            opt.tell(config, loss)
            if i >= opt.n_init:
                failed.append(loss is None)
        rates.append(float(np.mean(failed)))
    # Random search fails half the time here; told failures as a penalty, skopt learns the cliff.
    assert np.mean(rates) < 0.35, rates


WEDGE = """\
system: wedge
knobs:
  x: {type: real, min: 0, max: 10, default: 1}
  y: {type: real, min: 0, max: 10, default: 1}
  m: {type: enum, values: [a, b], default: a}
constraints:
  - x + y <= 5
"""


class Unfiltered(SkoptForest):
    """skopt without the constraint filter: only the penalty-and-retry backstop is left."""

    def _constraint(self, told: set[tuple[Value, ...]]) -> None:
        return None


@pytest.mark.parametrize("cls", [SkoptGP, SkoptForest, Unfiltered])
def test_constraint_violations_are_never_returned(
    cls: type[SkoptGP | SkoptForest], make_spec: Callable[..., Spec]
) -> None:
    """Only an eighth of the box is valid and the loss pulls to the boundary."""
    space = Space(make_spec(WEDGE), ["x", "y", "m"], MACHINE)
    extra = {} if cls is SkoptGP else {"n_trees": 10}
    opt = cls(space, seed=0, n_candidates=300, **extra)
    opt.tell(space.default(), -2.0)
    for _ in range(4):
        batch = opt.ask(2)
        assert len({space.key(c) for c in batch}) == 2
        for config in batch:
            assert space.is_valid(config), config
            opt.tell(config, -(config["x"] + config["y"]))
    if cls is Unfiltered:
        # skopt proposed invalid configs; each was told as a failure and kept
        assert opt.rejected_
        assert all(not space.is_valid(from_skopt_point(space, p)) for p in opt.rejected_)
        other = Unfiltered(space, seed=0)
        other.load_state(opt.state_dict())
        assert other.rejected_ == opt.rejected_
    else:
        assert not opt.rejected_  # skopt only scores valid points


def test_batches_avoid_pending_and_seen(space: Space) -> None:
    opt = SkoptGP(space, seed=3, n_candidates=300)
    rng = np.random.default_rng(0)
    for config in space.sample(rng, 8):
        opt.tell(config, float(math.log2(config["mem"])))
    pending = space.sample(rng, 3)
    batch = opt.ask(3, pending=pending)
    keys = {space.key(c) for c in batch}
    assert len(keys) == 3
    assert not keys & ({space.key(c) for c in pending} | opt.seen())
    for config in batch:
        assert space.is_valid(config)


def test_same_seed_same_batches(space: Space) -> None:
    def run(seed: int) -> list[Config]:
        opt = SkoptForest(space, seed=seed, n_trees=5, n_candidates=200, n_init=3)
        out = []
        for i in range(3):
            batch = opt.ask(2)
            out += batch
            for j, config in enumerate(batch):
                opt.tell(config, None if i == j == 1 else float(config["ratio"]))
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_tell_only_records(space: Space, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replaying a long history must be cheap: skopt is built (and fitted) at ask time only."""
    opt = SkoptGP(space, seed=0)

    def boom() -> None:
        raise AssertionError("tell built an skopt optimizer")

    monkeypatch.setattr(opt, "_skopt", boom)
    for config in space.sample(np.random.default_rng(0), 50):
        opt.tell(config, 1.0)
    assert len(opt.history_) == 50

"""The ask/tell contract, checked for every optimiser in the registry."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import pytest

from autotune.optimizers import OPTIMIZERS, Optimizer, make_optimizer
from autotune.space import Space
from autotune.spec import Config, Spec
from tests.unit._support import MACHINE

NAMES = ["buffers", "mem", "ratio", "workers", "flush", "mode", "jit"]
# Smaller candidate sets keep GP asks fast; passed only to optimisers that take them.
FAST = {"n_candidates": 150, "n_local": 30}

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def make(name: str, space: Space, seed: int = 0, **kwargs: Any) -> Optimizer:
    cls = OPTIMIZERS[name]
    params = inspect.signature(cls).parameters
    fast = {k: v for k, v in FAST.items() if k in params}
    return cls(space, seed=seed, **{**fast, **kwargs})


@pytest.fixture
def space(toy_spec: Spec) -> Space:
    return Space(toy_spec, NAMES, MACHINE)


def loss(config: Config) -> float:
    """A smooth synthetic loss with its optimum inside the space."""
    return (
        (math.log2(config["buffers"]) - 14) ** 2
        + (math.log2(config["mem"]) - 12) ** 2
        + 10 * (config["ratio"] - 0.7) ** 2
        + (config["workers"] - 3) ** 2 / 4
        + (0.0 if config["mode"] == "b" else 1.0)
        + (0.5 if config["jit"] else 0.0)
    )


def assert_valid(space: Space, config: Config) -> None:
    assert set(config) == set(space.names)
    for knob in space.knobs:
        assert knob.validate(config[knob.name]) == config[knob.name], (knob.name, config)
    assert space.is_valid(config), config


def test_registry_names_match_classes() -> None:
    assert {"gp", "random", "lhs"} <= set(OPTIMIZERS)
    for name, cls in OPTIMIZERS.items():
        assert cls.name == name
        assert issubclass(cls, Optimizer)


def test_make_optimizer(space: Space) -> None:
    for name in OPTIMIZERS:
        opt = make_optimizer(name, space, seed=3)
        assert isinstance(opt, OPTIMIZERS[name])
        assert opt.seed == 3
        assert opt.space is space
    with pytest.raises(ValueError, match="unknown optimizer 'nope'") as err:
        make_optimizer("nope", space)
    for name in OPTIMIZERS:
        assert name in str(err.value)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_ask_returns_n_distinct_valid_configs_never_seen_before(name: str, space: Space) -> None:
    opt = make(name, space, seed=1)
    told: set[tuple[object, ...]] = set()
    baseline = space.default()
    opt.tell(baseline, loss(baseline))
    told.add(space.key(baseline))
    for round_ in range(4):  # design phase first, then model-based for GP
        n = 3 if round_ != 2 else 1
        batch = opt.ask(n)
        assert len(batch) == n
        keys = [space.key(c) for c in batch]
        assert len(set(keys)) == n, batch
        assert not set(keys) & told, "asked for a config that was already tried"
        for config in batch:
            assert_valid(space, config)
        for i, config in enumerate(batch):
            opt.tell(config, None if (round_ == 1 and i == 0) else loss(config))
            told.add(space.key(config))
    assert len(opt.history_) == 1 + 3 + 3 + 1 + 3


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_tell_accepts_failures(name: str, space: Space) -> None:
    opt = make(name, space, seed=2)
    for _ in range(7):
        (config,) = opt.ask(1)
        opt.tell(config, None)  # every trial failed
    batch = opt.ask(2)
    assert len(batch) == 2
    for config in batch:
        assert_valid(space, config)
    # failures mixed with successes
    for i, config in enumerate(batch):
        opt.tell(config, loss(config) if i else None)
    (config,) = opt.ask(1)
    assert_valid(space, config)
    assert sum(loss is None for _, loss in opt.history_) == 8


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_same_seed_same_configs(name: str, space: Space) -> None:
    def run(seed: int) -> list[Config]:
        opt = make(name, space, seed=seed)
        asked = []
        for i in range(6):
            (config,) = opt.ask(1)
            asked.append(config)
            opt.tell(config, None if i == 3 else loss(config))
        return asked

    first = run(5)
    assert run(5) == first
    assert run(6) != first


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_tell_keeps_a_copy(name: str, space: Space) -> None:
    opt = make(name, space)
    config = space.default()
    opt.tell(config, 1.0)
    config["mode"] = "c"
    assert opt.history_[0][0]["mode"] == "a"
    assert opt.history_[0][1] == 1.0


@pytest.fixture
def tiny(make_spec: Any) -> Space:
    """Four configs in all."""
    spec = make_spec(
        "system: tiny\nknobs:\n  a: {type: bool, default: true}\n  b: {type: bool, default: true}\n"
    )
    return Space(spec, ["a", "b"], MACHINE)


ALL_FOUR = [{"a": a, "b": b} for a in (True, False) for b in (True, False)]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_fresh_optimizer_can_enumerate_a_tiny_space(name: str, tiny: Space) -> None:
    batch = make(name, tiny).ask(4)
    assert sorted(map(tiny.key, batch)) == sorted(map(tiny.key, ALL_FOUR))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_ask_never_repeats_when_the_space_runs_out(name: str, tiny: Space) -> None:
    """With one untried config left, ask(2) must not return it twice."""
    opt = make(name, tiny)
    for config in ALL_FOUR[:3]:
        opt.tell(config, 1.0 if config["a"] else 2.0)
    try:
        batch = opt.ask(2)
    except RuntimeError as exc:
        assert "no untried" in str(exc)
    else:
        keys = [tiny.key(c) for c in batch]
        assert len(set(keys)) == len(keys) == 2, batch


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_exhausted_space(name: str, tiny: Space) -> None:
    opt = make(name, tiny)
    for config in ALL_FOUR[:3]:
        opt.tell(config, 1.0 if config["a"] else 2.0)
    assert opt.ask(1) == [ALL_FOUR[3]]
    opt.tell(ALL_FOUR[3], 0.5)
    with pytest.raises(RuntimeError, match="no untried valid config"):
        opt.ask(1)


def test_gp_uses_its_model_after_the_design(space: Space) -> None:
    opt = make("gp", space, seed=0)
    assert opt.model_ is None  # type: ignore[attr-defined]
    for _ in range(opt.n_init):  # type: ignore[attr-defined]
        (config,) = opt.ask(1)
        opt.tell(config, loss(config))
    assert opt.model_ is None  # type: ignore[attr-defined]
    (config,) = opt.ask(1)
    assert opt.model_ is not None  # type: ignore[attr-defined]
    assert_valid(space, config)


def test_lhs_design_is_space_filling(space: Space) -> None:
    from autotune.optimizers import lhs_design

    design = lhs_design(space, 10, seed=0)
    assert 0 < len(design) <= 10
    for config in design:
        assert_valid(space, config)
    # one point per stratum on each axis (before dropping invalid points)
    u = np.array([space.to_unit(c) for c in design])
    ratio = u[:, NAMES.index("ratio")]
    assert len({int(x * 10) for x in ratio}) == len(design)
    assert lhs_design(space, 10, seed=0) == design
    assert lhs_design(space, 0, seed=0) == []

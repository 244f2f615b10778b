"""The search space: unit-cube coordinates, model features, sampling and neighbours."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from autotune.space import SPECIAL_PROBABILITY, Space
from autotune.spec import Config, Spec
from tests.unit._support import MACHINE

NAMES = ["buffers", "mem", "ratio", "cost", "workers", "flush", "auto", "mode", "jit"]


@pytest.fixture
def space(toy_spec: Spec) -> Space:
    return Space(toy_spec, NAMES, MACHINE)


def assert_valid(space: Space, config: Config) -> None:
    """Every value is one its knob accepts, in canonical form, and the constraints hold."""
    assert set(config) == set(space.names)
    for knob in space.knobs:
        value = config[knob.name]
        assert knob.validate(value) == value, (knob.name, value)
        assert type(knob.validate(value)) is type(value), (knob.name, value)
    assert space.is_valid(config), config
    assert space.spec.violated(config, MACHINE) == []


def test_shape(space: Space) -> None:
    assert len(space) == 9
    assert space.names == NAMES
    # buffers, mem, ratio, cost, workers: 1 each; flush, auto: 1 + 1 special; mode: 3; jit: 1
    assert space.n_features == 5 + 2 + 2 + 3 + 1


def test_default_is_the_spec_default(space: Space, toy_spec: Spec) -> None:
    assert space.default() == {name: toy_spec.knobs[name].default for name in NAMES}
    assert_valid(space, space.default())


def test_corners_of_the_cube(space: Space) -> None:
    low = space.from_unit(np.zeros(len(space)))
    assert low["buffers"] == 128  # 1MB in 8kB pages
    assert low["mem"] == 64
    assert low["ratio"] == pytest.approx(0.1)
    assert low["cost"] == pytest.approx(0.01)
    assert low["workers"] == 0
    assert low["flush"] == 1
    assert low["auto"] == 1
    assert low["mode"] == "a"
    assert low["jit"] is False
    high = space.from_unit(np.ones(len(space)))
    assert high["buffers"] == 131072
    assert high["mem"] == 262144
    assert high["ratio"] == pytest.approx(1.0)
    assert high["cost"] == pytest.approx(100.0)
    assert high["workers"] == 8  # 2x cpus
    assert high["mode"] == "c"
    assert high["jit"] is True


def test_log_scale_midpoint_is_the_geometric_mean(space: Space) -> None:
    mid = space.from_unit(np.full(len(space), 0.5))
    assert mid["cost"] == pytest.approx(1.0)  # sqrt(0.01 * 100)
    assert mid["buffers"] == round(math.sqrt(128 * 131072))
    assert mid["ratio"] == pytest.approx(0.55)  # linear
    assert mid["workers"] == 4
    assert mid["mode"] == "b"


def test_from_unit_clamps_numeric_coordinates_outside_the_cube(toy_spec: Spec) -> None:
    numeric = ["buffers", "mem", "ratio", "cost", "workers", "flush", "auto", "jit"]
    space = Space(toy_spec, numeric, MACHINE)
    assert space.from_unit(np.full(len(space), -3.0)) == space.from_unit(np.zeros(len(space)))
    assert space.from_unit(np.full(len(space), 7.0)) == space.from_unit(np.ones(len(space)))


def test_unit_round_trip_for_every_knob_type(space: Space) -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        config = space.from_unit(rng.random(len(space)))
        u = space.to_unit(config)
        assert np.all((u >= 0) & (u <= 1))
        assert space.from_unit(u) == config


def test_unit_round_trip_of_hand_written_configs(space: Space) -> None:
    config: Config = {
        "buffers": 16384,
        "mem": 4096,
        "ratio": 0.25,
        "cost": 4.0,
        "workers": 3,
        "flush": 64,
        "auto": 200,
        "mode": "c",
        "jit": False,
    }
    assert space.from_unit(space.to_unit(config)) == config
    config.update(mode="b", jit=True)
    assert space.from_unit(space.to_unit(config)) == config


def test_enum_and_bool_coordinates_are_centred(space: Space) -> None:
    u = space.to_unit({**space.default(), "mode": "b", "jit": False})
    assert u[NAMES.index("mode")] == pytest.approx(0.5)
    assert u[NAMES.index("jit")] == pytest.approx(0.25)


def test_encode_numeric_enum_bool_and_special(space: Space) -> None:
    x = space.encode(space.default())
    assert x.shape == (space.n_features,)
    assert np.all((x >= 0) & (x <= 1))
    # default flush is the special 0 and auto the special -1: indicator set, magnitude 0
    flush_at, auto_at = 5, 7
    assert x[flush_at] == 0.0 and x[flush_at + 1] == 1.0
    assert x[auto_at] == 0.0 and x[auto_at + 1] == 1.0
    mode = x[9:12]
    assert list(mode) == [1.0, 0.0, 0.0]  # "a", one-hot
    assert x[12] == 1.0  # jit on
    other = space.encode({**space.default(), "flush": 1, "mode": "c", "jit": False})
    assert other[flush_at] == 0.0 and other[flush_at + 1] == 0.0  # min, not special
    assert list(other[9:12]) == [0.0, 0.0, 1.0]
    assert other[12] == 0.0


def test_encode_distinguishes_a_special_value_from_the_minimum(space: Space) -> None:
    low = {**space.default(), "flush": 1, "auto": 1}
    assert not np.array_equal(space.encode(low), space.encode(space.default()))


def test_encode_is_injective_on_distinct_configs(space: Space) -> None:
    configs = space.sample(np.random.default_rng(3), 200)
    keys = {space.key(c) for c in configs}
    rows = {tuple(np.round(space.encode(c), 12)) for c in configs}
    assert len(rows) == len(keys)


def test_encode_agrees_with_to_unit_for_plain_numeric_knobs(space: Space) -> None:
    config = space.from_unit(np.full(len(space), 0.3))
    x, u = space.encode(config), space.to_unit(config)
    for i, at in enumerate([0, 1, 2, 3, 4]):
        assert x[at] == pytest.approx(u[i])


def test_encode_many(space: Space) -> None:
    configs = space.sample(np.random.default_rng(0), 5)
    X = space.encode_many(configs)
    assert X.shape == (5, space.n_features)
    assert np.array_equal(X[2], space.encode(configs[2]))
    assert space.encode_many([]).shape == (0, space.n_features)


def test_samples_are_valid_and_satisfy_constraints(space: Space) -> None:
    configs = space.sample(np.random.default_rng(1), 400)
    assert len(configs) == 400
    for config in configs:
        assert_valid(space, config)
    # the constraint buffers + 10 * mem <= 1GB does bite in this space
    assert not all(
        space.is_valid(space.from_unit(u))
        for u in np.random.default_rng(1).random((400, len(space)))
    )


def test_samples_hit_special_values(space: Space) -> None:
    configs = space.sample(np.random.default_rng(2), 1000)
    share = sum(c["auto"] == -1 for c in configs) / len(configs)
    assert abs(share - SPECIAL_PROBABILITY) < 0.05
    assert any(c["flush"] == 0 for c in configs)
    assert any(c["flush"] != 0 for c in configs)


def test_sampling_is_deterministic_for_a_seed(space: Space) -> None:
    a = space.sample(np.random.default_rng(42), 20)
    b = space.sample(np.random.default_rng(42), 20)
    c = space.sample(np.random.default_rng(43), 20)
    assert a == b
    assert a != c


def test_sampling_a_tight_constraint_returns_only_valid_configs(
    make_spec: Callable[..., Spec],
) -> None:
    spec = make_spec(
        """\
system: x
knobs:
  a: {type: integer, min: 0, max: 1000, default: 0}
  b: {type: integer, min: 0, max: 1000, default: 0}
constraints:
  - a + b <= 200
"""
    )
    space = Space(spec, ["a", "b"], MACHINE)
    configs = space.sample(np.random.default_rng(0), 50, max_tries=10)
    assert 0 < len(configs) < 50  # rejection sampling gives up after max_tries per config...
    assert all(c["a"] + c["b"] <= 200 for c in configs)  # ...and returns only valid ones


def test_neighbours_are_valid_and_near(space: Space) -> None:
    rng = np.random.default_rng(5)
    base = space.from_unit(np.full(len(space), 0.4))
    assert space.is_valid(base)
    neighbours = space.neighbours(base, rng, 200)
    assert len(neighbours) > 100
    for config in neighbours:
        assert_valid(space, config)
        changed = [n for n in NAMES if config[n] != base[n]]
        assert len(changed) <= 3
    assert any(n != base for n in neighbours)


def test_neighbours_keep_unmoved_special_values(space: Space) -> None:
    rng = np.random.default_rng(11)
    base = {**space.from_unit(np.full(len(space), 0.4)), "flush": 0, "auto": -1}
    neighbours = space.neighbours(base, rng, 200)
    for config in neighbours:
        assert_valid(space, config)
        changed = [n for n in NAMES if config[n] != base[n]]
        assert len(changed) <= 3
    assert sum(c["auto"] == -1 for c in neighbours) > len(neighbours) / 2


def test_neighbours_of_a_config_on_a_constraint_stay_valid(space: Space) -> None:
    # buffers + 10 * mem exactly at 1GB: many moves would break the constraint
    edge = {**space.default(), "buffers": 65536, "mem": 52428}
    assert space.is_valid(edge)
    for config in space.neighbours(edge, np.random.default_rng(9), 300):
        assert_valid(space, config)


def test_is_valid(space: Space) -> None:
    assert space.is_valid(space.default())
    assert not space.is_valid({**space.default(), "buffers": 131072})


def test_key_is_hashable_and_ordered(space: Space) -> None:
    config = space.default()
    key = space.key(config)
    assert key == tuple(config[n] for n in NAMES)
    assert {key: 1}[space.key(dict(reversed(list(config.items()))))] == 1


def test_subspace_holds_other_knobs_at_defaults_for_constraints(toy_spec: Spec) -> None:
    space = Space(toy_spec, ["buffers"], MACHINE)
    # mem stays at its 4MB default: buffers may go up to 1GB - 40MB
    assert space.is_valid({"buffers": (1024 - 40) * 128})
    assert not space.is_valid({"buffers": (1024 - 39) * 128})
    for config in space.sample(np.random.default_rng(0), 100):
        assert config["buffers"] <= (1024 - 40) * 128

"""Vectorised unit points: sample_units, units_of, config_of_units, perturb_units, features.

Model-based optimisers score candidates as arrays (U unit coordinates, S special
value index or -1) and only turn the few best into configs; these tests pin the
arrays to the dict-based path they stand in for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from autotune.space import SPECIAL_PROBABILITY, Space
from autotune.spec import Spec, load_spec
from autotune.tuner import select_knobs
from tests.unit._support import MACHINE, ROOT

NAMES = ["buffers", "mem", "ratio", "cost", "workers", "flush", "auto", "mode", "jit"]


@pytest.fixture
def space(toy_spec: Spec) -> Space:
    return Space(toy_spec, NAMES, MACHINE)


@pytest.fixture(scope="module")
def postgres() -> Space:
    """The built-in PostgreSQL spec with every safe tunable knob."""
    spec = load_spec(ROOT / "knobs" / "postgres.yaml", MACHINE)
    names = select_knobs(spec, None, allow_unsafe=False, restartable=True).names
    space = Space(spec, names, MACHINE)
    assert len(space) > 30
    return space


def encoded_one_by_one(space: Space, U: np.ndarray, S: np.ndarray) -> np.ndarray:
    return np.array([space.encode(space.config_of_units(u, s)) for u, s in zip(U, S, strict=True)])


def special_columns(space: Space) -> list[int]:
    return [i for i, k in enumerate(space.knobs) if k.numeric and k.special]


# -- features_of_units ------------------------------------------------------------


@pytest.mark.parametrize("which", ["toy", "postgres"])
@pytest.mark.parametrize("seed", [0, 1])
def test_features_of_units_equal_encode_of_config_row_by_row(
    which: str, seed: int, space: Space, postgres: Space
) -> None:
    sp = space if which == "toy" else postgres
    U, S = sp.sample_units(np.random.default_rng(seed), 600)
    assert (S >= 0).any(), "the sample should exercise special values"
    X = sp.features_of_units(U, S)
    assert X.shape == (600, sp.n_features)
    np.testing.assert_allclose(X, encoded_one_by_one(sp, U, S), rtol=0, atol=1e-9)


@pytest.mark.parametrize("which", ["toy", "postgres"])
def test_features_of_units_on_a_grid_and_the_cube_corners(
    which: str, space: Space, postgres: Space
) -> None:
    # exact 0, 1 and round fractions: where integer rounding and clamping bite
    sp = space if which == "toy" else postgres
    U = np.tile(np.linspace(0.0, 1.0, 41)[:, None], (1, len(sp)))
    S = np.full(U.shape, -1)
    np.testing.assert_allclose(
        sp.features_of_units(U, S), encoded_one_by_one(sp, U, S), rtol=0, atol=1e-9
    )


def test_features_of_units_clamp_like_from_unit(space: Space) -> None:
    U = np.random.default_rng(4).uniform(-0.5, 1.5, (300, len(space)))
    S = np.full(U.shape, -1)
    np.testing.assert_allclose(
        space.features_of_units(U, S), encoded_one_by_one(space, U, S), rtol=0, atol=1e-9
    )


def test_features_of_units_of_perturbed_points(space: Space) -> None:
    rng = np.random.default_rng(8)
    u, s = space.units_of({**space.default(), "flush": 0, "auto": 17})
    U, S = space.perturb_units(u, s, rng, 400)
    np.testing.assert_allclose(
        space.features_of_units(U, S), encoded_one_by_one(space, U, S), rtol=0, atol=1e-9
    )


def test_features_of_units_with_a_degenerate_range(make_spec: Callable[..., Spec]) -> None:
    spec = make_spec(
        "system: x\nknobs:\n"
        "  a: {type: real, min: 2, max: 2, default: 2}\n"
        "  b: {type: integer, min: 3, max: 3, default: 3, scale: log}\n"
        "  c: {type: real, min: -5, max: 5, default: 0}\n"
    )
    sp = Space(spec, ["a", "b", "c"], MACHINE)
    U = np.random.default_rng(0).random((50, 3))
    S = np.full(U.shape, -1)
    X = sp.features_of_units(U, S)
    np.testing.assert_allclose(X, encoded_one_by_one(sp, U, S), rtol=0, atol=1e-12)
    assert np.all(X[:, :2] == 0.5)


def test_features_of_a_special_value_set_its_indicator_only(space: Space) -> None:
    U = np.full((2, len(space)), 0.6)
    S = np.full(U.shape, -1)
    flush = NAMES.index("flush")
    S[1, flush] = 0
    X = space.features_of_units(U, S)
    at = int(space._offsets[flush])
    assert X[0, at] > 0 and X[0, at + 1] == 0.0
    assert X[1, at] == 0.0 and X[1, at + 1] == 1.0
    # everything else is the same point
    others = [j for j in range(space.n_features) if j not in (at, at + 1)]
    assert np.array_equal(X[0, others], X[1, others])


# -- units_of / config_of_units ------------------------------------------------------


@pytest.mark.parametrize("which", ["toy", "postgres"])
def test_units_round_trip_for_sampled_configs(which: str, space: Space, postgres: Space) -> None:
    sp = space if which == "toy" else postgres
    configs = sp.sample(np.random.default_rng(3), 150)
    n_special = 0
    for config in configs:
        u, s = sp.units_of(config)
        assert u.shape == s.shape == (len(sp),)
        assert np.all((u >= 0) & (u <= 1))
        assert sp.config_of_units(u, s) == config
        # and the arrays encode to what the config does
        np.testing.assert_allclose(
            sp.features_of_units(u[None, :], s[None, :])[0], sp.encode(config), atol=1e-9
        )
        n_special += int((s >= 0).sum())
    assert n_special > 0, "sampled configs should include special values"


def test_units_of_marks_special_values_by_index(space: Space) -> None:
    config = {**space.default(), "flush": 0, "auto": -1, "mode": "c"}
    u, s = space.units_of(config)
    assert s[NAMES.index("flush")] == 0
    assert s[NAMES.index("auto")] == 0
    assert np.all(np.delete(s, [NAMES.index("flush"), NAMES.index("auto")]) == -1)
    assert space.config_of_units(u, s) == config
    plain = {**config, "flush": 1, "auto": 1}  # the minimum, not the special value
    u2, s2 = space.units_of(plain)
    assert np.all(s2 == -1)
    assert space.config_of_units(u2, s2) == plain


def test_units_of_a_knob_with_several_special_values(make_spec: Callable[..., Spec]) -> None:
    spec = make_spec(
        "system: x\nknobs:\n  a: {type: integer, min: 1, max: 100, default: 5, special: [-1, 0]}\n"
    )
    sp = Space(spec, ["a"], MACHINE)
    for value, index in [(-1, 0), (0, 1), (7, -1)]:
        u, s = sp.units_of({"a": value})
        assert int(s[0]) == index
        assert sp.config_of_units(u, s) == {"a": value}


# -- sample_units ------------------------------------------------------------------


@pytest.mark.parametrize("which", ["toy", "postgres"])
def test_sample_units_hits_special_values_at_the_documented_rate(
    which: str, space: Space, postgres: Space
) -> None:
    sp = space if which == "toy" else postgres
    n = 4000
    U, S = sp.sample_units(np.random.default_rng(6), n)
    assert U.shape == S.shape == (n, len(sp))
    assert np.all((U >= 0) & (U < 1))
    with_special = special_columns(sp)
    assert with_special
    for i, knob in enumerate(sp.knobs):
        share = float((S[:, i] >= 0).mean())
        if i in with_special:
            # binomial sd at p=0.2, n=4000 is 0.0063: 0.03 is almost five of them
            assert abs(share - SPECIAL_PROBABILITY) < 0.03, (knob.name, share)
            assert S[:, i].max() < len(knob.special)
        else:
            assert share == 0.0, knob.name


def test_sample_units_picks_every_special_value_of_a_knob(make_spec: Callable[..., Spec]) -> None:
    spec = make_spec(
        "system: x\nknobs:\n"
        "  a: {type: integer, min: 1, max: 100, default: 5, special: [-1, 0]}\n"
        "  b: {type: bool, default: true}\n"
    )
    sp = Space(spec, ["a", "b"], MACHINE)
    _, S = sp.sample_units(np.random.default_rng(0), 3000)
    counts = np.bincount(S[:, 0] + 1, minlength=3)  # none, -1, 0
    assert counts[1] > 200 and counts[2] > 200
    assert abs(counts[1] - counts[2]) < 150  # uniform over the specials
    assert np.all(S[:, 1] == -1)


def test_sample_units_is_deterministic_for_a_seed(space: Space) -> None:
    a = space.sample_units(np.random.default_rng(1), 50)
    b = space.sample_units(np.random.default_rng(1), 50)
    c = space.sample_units(np.random.default_rng(2), 50)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_sample_units_of_zero_points(space: Space) -> None:
    U, S = space.sample_units(np.random.default_rng(0), 0)
    assert U.shape == S.shape == (0, len(space))
    assert space.features_of_units(U, S).shape == (0, space.n_features)


# -- perturb_units -----------------------------------------------------------------


def changed_knobs(u: np.ndarray, s: np.ndarray, U: np.ndarray, S: np.ndarray) -> np.ndarray:
    """(rows, knobs): which knobs of each perturbed row differ from the base point."""
    moved_u = np.not_equal(U, u[None, :])
    moved_s = np.not_equal(S, s[None, :])
    return np.asarray(moved_u | moved_s)


def test_perturb_units_moves_one_to_three_knobs_per_row(space: Space) -> None:
    u = np.full(len(space), 0.5)  # interior: a nudge can never clip back onto the base
    s = np.full(len(space), -1)
    U, S = space.perturb_units(u, s, np.random.default_rng(0), 600)
    assert U.shape == S.shape == (600, len(space))
    counts = changed_knobs(u, s, U, S).sum(1)
    assert counts.min() >= 1 and counts.max() <= 3
    assert set(counts.tolist()) == {1, 2, 3}  # every move size happens
    # every knob gets moved some of the time
    assert changed_knobs(u, s, U, S).any(axis=0).all()


def test_perturb_units_from_special_values_and_the_cube_faces(space: Space) -> None:
    rng = np.random.default_rng(1)
    for base in (np.zeros(len(space)), np.ones(len(space)), rng.random(len(space))):
        s = np.full(len(space), -1)
        s[NAMES.index("flush")] = 0
        s[NAMES.index("auto")] = 0
        U, S = space.perturb_units(base, s, rng, 500)
        assert np.all((U >= 0) & (U <= 1))
        for i, knob in enumerate(space.knobs):
            if knob.special:
                assert S[:, i].min() >= -1 and S[:, i].max() < len(knob.special)
            else:
                assert np.all(S[:, i] == -1), knob.name
        counts = changed_knobs(base, s, U, S).sum(1)
        assert counts.max() <= 3
        # special values, once moved, are redrawn: they leave the special value
        for col in (NAMES.index("flush"), NAMES.index("auto")):
            assert (S[:, col] == -1).any() and (S[:, col] == 0).any()


def test_perturb_units_is_local_for_numeric_knobs(space: Space) -> None:
    u = np.full(len(space), 0.5)
    s = np.full(len(space), -1)
    U, S = space.perturb_units(u, s, np.random.default_rng(2), 2000, step=0.05)
    ratio = NAMES.index("ratio")
    moved = (U[:, ratio] != 0.5) & (S[:, ratio] == -1)
    assert moved.sum() > 100
    # nudged, not redrawn: a normal with sd 0.05 stays within 0.25 of the base
    assert np.abs(U[moved, ratio] - 0.5).max() < 0.25
    assert (U[moved, ratio] - 0.5).std() == pytest.approx(0.05, rel=0.2)


def test_perturb_units_sometimes_jumps_onto_a_special_value(space: Space) -> None:
    u = np.full(len(space), 0.5)
    s = np.full(len(space), -1)
    _, S = space.perturb_units(u, s, np.random.default_rng(3), 3000)
    flush = NAMES.index("flush")
    assert 0 < (S[:, flush] == 0).sum() < 300
    others = [i for i in range(len(space)) if i not in special_columns(space)]
    assert np.all(S[:, others] == -1)


def test_perturb_units_of_a_two_knob_space(make_spec: Callable[..., Spec]) -> None:
    spec = make_spec(
        "system: x\nknobs:\n"
        "  a: {type: real, min: 0, max: 1, default: 0.5}\n"
        "  b: {type: real, min: 0, max: 1, default: 0.5}\n"
    )
    sp = Space(spec, ["a", "b"], MACHINE)
    u, s = np.array([0.5, 0.5]), np.array([-1, -1])
    U, S = sp.perturb_units(u, s, np.random.default_rng(0), 300)
    counts = changed_knobs(u, s, U, S).sum(1)
    assert set(counts.tolist()) == {1, 2}
    assert sp.perturb_units(u, s, np.random.default_rng(0), 0)[0].shape == (0, 2)


def test_perturb_units_is_deterministic_for_a_seed(space: Space) -> None:
    u, s = space.units_of({**space.default(), "flush": 0})
    u0, s0 = u.copy(), s.copy()
    a = space.perturb_units(u, s, np.random.default_rng(9), 40)
    b = space.perturb_units(u, s, np.random.default_rng(9), 40)
    c = space.perturb_units(u, s, np.random.default_rng(10), 40)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # the base point itself is not modified in place
    assert np.array_equal(u, u0) and np.array_equal(s, s0)


def test_perturbed_points_decode_to_valid_knob_values(space: Space) -> None:
    u, s = space.units_of(space.default())
    U, S = space.perturb_units(u, s, np.random.default_rng(4), 200)
    for row_u, row_s in zip(U, S, strict=True):
        config = space.config_of_units(row_u, row_s)
        for knob in space.knobs:
            assert knob.validate(config[knob.name]) == config[knob.name]

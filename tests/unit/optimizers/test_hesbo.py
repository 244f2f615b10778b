"""HeSBO: a seeded low-dimensional projection that an inner optimiser searches.

The ask/tell contract is checked in test_contract.py for every registered
optimiser, hesbo included; these tests cover what only the projection does.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import statistics
from typing import Any

import numpy as np
import pytest
import scipy.stats  # noqa: F401 - the GP imports it lazily: load it once, before forking
from threadpoolctl import threadpool_limits

from autotune.optimizers import OPTIMIZERS, HeSBOOptimizer, Optimizer, RandomOptimizer
from autotune.space import SPECIAL_PROBABILITY, Space
from autotune.spec import Config, load_spec, parse_spec
from autotune.tuner import select_knobs
from tests.unit._support import MACHINE, ROOT

pytestmark = pytest.mark.usefixtures("one_blas_thread")

# Smaller GP candidate sets keep asks fast; passed only if the GP takes them.
FAST_GP = {
    k: v
    for k, v in {"n_candidates": 200, "n_local": 50}.items()
    if k in inspect.signature(OPTIMIZERS["gp"]).parameters
}


def hesbo(space: Space, seed: int = 0, **kwargs: Any) -> HeSBOOptimizer:
    if kwargs.get("inner", "gp") == "gp":
        kwargs.setdefault("inner_options", FAST_GP)
    return HeSBOOptimizer(space, seed=seed, **kwargs)


@pytest.fixture(scope="module")
def postgres() -> Space:
    """The built-in PostgreSQL spec with every safe tunable knob: more than 30."""
    spec = load_spec(ROOT / "knobs" / "postgres.yaml", MACHINE)
    names = select_knobs(spec, None, allow_unsafe=False, restartable=True).names
    space = Space(spec, names, MACHINE)
    assert len(space) > 30
    return space


N_WIDE = 40
WIDE = "system: wide\nknobs:\n" + "".join(
    f"  k{i:02d}: {{type: real, min: 0, max: 10, default: 0}}\n" for i in range(N_WIDE)
)
OPTIMUM = {"k03": 7.0, "k17": 3.0, "k29": 6.0}


def wide_space() -> Space:
    spec = parse_spec(WIDE, "wide.yaml", MACHINE)
    return Space(spec, list(spec.knobs), MACHINE)


def wide_loss(config: Config) -> float:
    """40 knobs, of which only three matter: a bowl with its minimum, 0, inside."""
    return sum((float(config[k]) - v) ** 2 for k, v in OPTIMUM.items())


def assert_valid(space: Space, config: Config) -> None:
    assert set(config) == set(space.names)
    for knob in space.knobs:
        assert knob.validate(config[knob.name]) == config[knob.name], (knob.name, config)
    assert space.is_valid(config), space.spec.violated(config, space.machine)


def test_projection_depends_only_on_the_seed(postgres: Space) -> None:
    a, b = hesbo(postgres, seed=3), hesbo(postgres, seed=3)
    b.tell(postgres.default(), 1.0)
    b.reseed(7)
    b.ask(2)
    assert np.array_equal(a.bucket_, b.bucket_)
    assert np.array_equal(a.sign_, b.sign_)
    y = np.random.default_rng(0).uniform(-1, 1, a.dim)
    assert a.project(y) == b.project(y)
    other = hesbo(postgres, seed=4)
    assert not np.array_equal(a.bucket_, other.bucket_) or not np.array_equal(a.sign_, other.sign_)
    # balanced buckets: every synthetic coordinate drives at least one knob
    assert a.dim == 16
    assert set(a.bucket_) == set(range(a.dim))
    assert set(a.sign_) == {-1.0, 1.0}


def test_dim_shrinks_to_small_spaces_and_bad_arguments_are_refused(toy_spec: Any) -> None:
    space = Space(toy_spec, ["mem", "ratio", "mode"], MACHINE)
    opt = hesbo(space, dim=16)
    assert opt.dim == 3 and len(opt.low_space) == 3
    assert sorted(opt.bucket_) == [0, 1, 2]
    with pytest.raises(ValueError, match="unknown inner optimizer 'nope'"):
        HeSBOOptimizer(space, inner="nope")
    with pytest.raises(ValueError, match="unknown inner optimizer 'hesbo'"):
        HeSBOOptimizer(space, inner="hesbo")
    with pytest.raises(ValueError, match="dim"):
        HeSBOOptimizer(space, dim=0)


def test_every_proposal_on_a_large_space_is_valid_new_and_not_pending(postgres: Space) -> None:
    opt = hesbo(postgres, seed=1)
    baseline = postgres.default()
    opt.tell(baseline, 100.0)
    told = {postgres.key(baseline)}
    rng = np.random.default_rng(0)
    for round_ in range(4):
        pending = opt.ask(2)
        batch = opt.ask(3, pending=pending)
        keys = {postgres.key(c) for c in batch}
        assert len(keys) == 3
        assert not keys & told
        assert not keys & {postgres.key(c) for c in pending}
        for config in [*pending, *batch]:
            assert_valid(postgres, config)
        for i, config in enumerate([*pending, *batch]):
            opt.tell(config, None if (round_, i) == (1, 0) else float(rng.uniform(50, 150)))
            told.add(postgres.key(config))
    assert len(opt.history_) == 1 + 4 * 5


def test_special_values_come_up_at_about_the_intended_rate(postgres: Space) -> None:
    opt = hesbo(postgres, seed=2, inner="random")
    configs = opt.ask(150)
    with_special = [k for k in postgres.knobs if k.numeric and k.special]
    assert len(with_special) >= 10
    hits = [c[k.name] in k.special for c in configs for k in with_special]
    assert abs(np.mean(hits) - SPECIAL_PROBABILITY) < 0.07, np.mean(hits)
    # and every such knob gets its special value now and then
    assert all(any(c[k.name] in k.special for c in configs) for k in with_special)


def test_the_lowest_share_of_a_coordinate_is_split_among_special_values(make_spec: Any) -> None:
    spec = make_spec(
        "system: s\nknobs:\n  a: {type: integer, min: 1, max: 100, default: -1, special: [-1, 0]}\n"
    )
    opt = hesbo(Space(spec, ["a"], MACHINE), inner="random")
    assert opt.dim == 1
    grid = np.linspace(-1, 1, 2001)
    values = [opt.project([y])["a"] for y in grid]
    share = {v: values.count(v) / len(values) for v in (-1, 0)}
    assert share[-1] == pytest.approx(SPECIAL_PROBABILITY / 2, abs=0.01)
    assert share[0] == pytest.approx(SPECIAL_PROBABILITY / 2, abs=0.01)
    normal = [v for v in values if v not in (-1, 0)]
    assert min(normal) == 1 and max(normal) == 100  # the rest spans the whole range


def test_back_projection_recovers_the_proposed_point() -> None:
    space = wide_space()
    opt = hesbo(space, seed=5, inner="random")
    for config in opt.ask(10):
        proposed = opt.low_point(config)  # what the inner optimiser asked for
        assert np.allclose(opt.back_project(config), proposed, atol=2e-3)
        opt.tell(config, wide_loss(config))
        # a proposed config is told to the inner optimiser at its exact point
        told, loss = opt.inner.history_[-1]
        assert [told[name] for name in opt.low_names] == list(proposed)
        assert loss == wide_loss(config)


def test_back_projection_is_a_clipped_bucket_mean(postgres: Space) -> None:
    opt = hesbo(postgres, seed=0, inner="random")
    config = postgres.default()
    y = opt.back_project(config)
    assert y.shape == (opt.dim,) and np.all(np.abs(y) <= 1.0)
    assert np.array_equal(y, hesbo(postgres, seed=0, inner="random").back_project(config))
    # on a projected config, the back-projection is close despite integers, enums and bools
    rng = np.random.default_rng(1)
    errors = [
        np.abs(opt.back_project(opt.project(y)) - y).mean()
        for y in rng.uniform(-1, 1, (20, opt.dim))
    ]
    assert statistics.median(errors) < 0.1, errors


def test_a_restarted_optimizer_retold_the_history_proposes_valid_new_configs(
    postgres: Space,
) -> None:
    first = hesbo(postgres, seed=4)
    rng = np.random.default_rng(4)
    first.tell(postgres.default(), 100.0)
    for i in range(6):
        (config,) = first.ask(1)
        first.tell(config, None if i == 2 else float(rng.uniform(50, 150)))
    state = first.state_dict()
    assert set(state) == {"inner"}

    def rebuilt() -> HeSBOOptimizer:
        # what the scheduler does after a restart: same seed, state, then the history
        opt = hesbo(postgres, seed=4)
        opt.load_state(state)
        for config, loss in first.history_:
            opt.tell(config, loss)
        opt.reseed(len(first.history_))
        return opt

    again, twice = rebuilt(), rebuilt()
    # the history reaches the inner optimiser at the same points every time
    assert again.inner.history_ == twice.inner.history_
    assert again.inner.history_[0] == first.inner.history_[0]  # the baseline: back-projected
    batch = again.ask(3)
    assert batch == twice.ask(3)
    keys = {postgres.key(c) for c in batch}
    assert len(keys) == 3 and not keys & again.seen()
    for config in batch:
        assert_valid(postgres, config)


# A 16-dimensional GP needs about 30 points before its length scales say which
# coordinates matter; a few trials more leave it room to use them.
BUDGET = 36
SEEDS = range(5)


def best_after_budget(opt: Optimizer) -> float:
    """The tuner's loop: the baseline first, then one ask/tell per trial."""
    config = opt.space.default()
    best = wide_loss(config)
    opt.tell(config, best)
    for _ in range(BUDGET - 1):
        (config,) = opt.ask(1)
        value = wide_loss(config)
        opt.tell(config, value)
        best = min(best, value)
    return best


def _hesbo_run(seed: int) -> float:
    threadpool_limits(limits=1)
    return best_after_budget(hesbo(wide_space(), seed=seed))


def test_hesbo_beats_random_when_few_of_many_knobs_matter() -> None:
    # Seeds run in forked workers, one BLAS thread each, as in test_gp_vs_random.
    workers = min(len(SEEDS), len(os.sched_getaffinity(0)))
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        projected = pool.map(_hesbo_run, SEEDS)
    rnd = [best_after_budget(RandomOptimizer(wide_space(), seed=s)) for s in SEEDS]
    assert statistics.median(projected) < statistics.median(rnd), (projected, rnd)

"""Hyperband as ASHA: rungs, promotions of the top 1/eta, new configs at the lowest rung."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from autotune.optimizers import HyperbandOptimizer, Suggestion, make_optimizer
from autotune.optimizers.hyperband import rungs_for
from autotune.space import Space
from autotune.spec import Config, Spec
from tests.unit._support import MACHINE

pytestmark = pytest.mark.usefixtures("one_blas_thread")

QUADRATIC = """\
system: quadratic
knobs:
  x: {type: real, min: 0, max: 10, default: 0}
  y: {type: real, min: 0, max: 10, default: 0}
"""
LOW, MID, FULL = 1 / 9, 1 / 3, 1.0


@pytest.fixture
def space(make_spec: Callable[..., Spec]) -> Space:
    return Space(make_spec(QUADRATIC), ["x", "y"], MACHINE)


def bowl(config: Config) -> float:
    return (float(config["x"]) - 7) ** 2 + (float(config["y"]) - 3) ** 2


def grid(n: int) -> list[Config]:
    """Distinct hand-made configs, so tests choose the losses."""
    return [{"x": float(i), "y": float(i) / 2} for i in range(n)]


# -- rungs --------------------------------------------------------------------------


def test_rungs_for_the_default_eta_and_minimum() -> None:
    assert rungs_for(3, 1 / 9) == pytest.approx([1 / 9, 1 / 3, 1.0], rel=1e-5)
    assert rungs_for(2, 0.25) == pytest.approx([0.25, 0.5, 1.0])
    assert rungs_for(3, 0.1) == pytest.approx([1 / 9, 1 / 3, 1.0], rel=1e-5)  # 1/27 < 0.1
    assert rungs_for(3, 0.05) == pytest.approx([1 / 9, 1 / 3, 1.0], rel=1e-5)
    assert rungs_for(4, 1.0) == [1.0]
    assert rungs_for(3, 1 / 27) == pytest.approx([1 / 27, 1 / 9, 1 / 3, 1.0], rel=1e-5)


@pytest.mark.parametrize(
    ("eta", "min_fidelity"), [(1, 0.5), (0, 0.5), (-3, 0.5), (3, 0.0), (3, -0.1), (3, 1.5)]
)
def test_rungs_for_rejects_bad_arguments(eta: int, min_fidelity: float, space: Space) -> None:
    with pytest.raises(ValueError, match="eta"):
        rungs_for(eta, min_fidelity)
    with pytest.raises(ValueError):
        HyperbandOptimizer(space, eta=eta, min_fidelity=min_fidelity)


def test_optimizer_rungs(space: Space) -> None:
    opt = make_optimizer("hyperband", space)
    assert isinstance(opt, HyperbandOptimizer)
    assert opt.rungs == pytest.approx([LOW, MID, FULL], rel=1e-5)
    assert HyperbandOptimizer(space, eta=2, min_fidelity=0.25).rungs == pytest.approx(
        [0.25, 0.5, 1]
    )


# -- the lowest rung ----------------------------------------------------------------------


def test_first_suggestions_are_distinct_configs_at_the_lowest_rung(space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=0)
    batch = opt.suggest(5)
    assert len(batch) == 5
    assert all(isinstance(s, Suggestion) for s in batch)
    assert all(s.fidelity == opt.rungs[0] for s in batch)
    assert not any(s.repeat for s in batch)
    assert len({space.key(s.config) for s in batch}) == 5
    for s in batch:
        assert space.is_valid(s.config)


def test_new_suggestions_avoid_pending_ones(space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=0)
    first = opt.suggest(3)
    more = opt.suggest(3, pending=first)
    keys = {space.key(s.config) for s in first}
    assert not keys & {space.key(s.config) for s in more}


# -- promotions -----------------------------------------------------------------------


def tell_all(
    opt: HyperbandOptimizer, configs: list[Config], losses: list[float | None], f: float
) -> None:
    for config, loss in zip(configs, losses, strict=True):
        opt.tell(config, loss, fidelity=f)


def test_the_best_of_the_top_third_is_promoted_first(space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=0)
    configs = grid(6)
    losses: list[float | None] = [5.0, 2.0, 6.0, 1.0, 4.0, 3.0]  # best: 3, then 1
    tell_all(opt, configs, losses, LOW)
    (first,) = opt.suggest(1)
    assert first.config == configs[3]
    assert first.fidelity == opt.rungs[1]
    # with the best pending at the next rung, the second best follows
    (second,) = opt.suggest(1, pending=[first])
    assert second.config == configs[1] and second.fidelity == opt.rungs[1]
    # floor(6 / 3) = 2: the third best (loss 3.0) is not promoted; a new config starts
    (third,) = opt.suggest(1, pending=[first, second])
    assert third.fidelity == opt.rungs[0]
    assert space.key(third.config) not in {space.key(c) for c in configs}


def test_one_batch_promotes_then_starts_new_configs(space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=0)
    configs = grid(6)
    tell_all(opt, configs, [5.0, 2.0, 6.0, 1.0, 4.0, 3.0], LOW)
    batch = opt.suggest(4)
    assert [s.config for s in batch[:2]] == [configs[3], configs[1]]
    assert [s.fidelity for s in batch] == [opt.rungs[1]] * 2 + [opt.rungs[0]] * 2
    assert len({space.key(s.config) for s in batch}) == 4


def test_fewer_than_eta_results_promote_nothing(space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=0)
    configs = grid(2)
    tell_all(opt, configs, [1.0, 2.0], LOW)  # floor(2 / 3) = 0
    (s,) = opt.suggest(1)
    assert s.fidelity == opt.rungs[0]
    assert space.key(s.config) not in {space.key(c) for c in configs}


def test_a_finished_promotion_is_not_promoted_again(space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=0)
    configs = grid(6)
    tell_all(opt, configs, [5.0, 2.0, 6.0, 1.0, 4.0, 3.0], LOW)
    opt.tell(configs[3], 1.5, fidelity=MID)  # the best has run at the next rung
    (s,) = opt.suggest(1)
    assert s.config == configs[1] and s.fidelity == opt.rungs[1]
    opt.tell(configs[1], 2.5, fidelity=MID)
    (s,) = opt.suggest(1)
    assert s.fidelity == opt.rungs[0]  # the top two are done; 2 at rung 1 promote nothing


def test_pending_promotions_are_not_promoted_twice(space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=0)
    configs = grid(9)
    tell_all(opt, configs, [float(9 - i) for i in range(9)], LOW)  # best: 8, 7, 6
    batch = opt.suggest(3)
    assert [s.config for s in batch] == [configs[8], configs[7], configs[6]]
    again = opt.suggest(3, pending=batch)
    promoted = {space.key(s.config) for s in batch}
    assert not promoted & {space.key(s.config) for s in again}
    assert all(s.fidelity == opt.rungs[0] for s in again)
    # a pending run at the lowest rung does not count as promoted
    low_pending = [Suggestion(configs[8], fidelity=opt.rungs[0])]
    (s,) = opt.suggest(1, pending=low_pending)
    assert s.config == configs[8] and s.fidelity == opt.rungs[1]


def test_the_highest_rung_with_a_candidate_promotes_first(space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=0)
    configs = grid(9)
    tell_all(opt, configs, [float(9 - i) for i in range(9)], LOW)
    tell_all(opt, configs[6:], [3.0, 1.0, 2.0], MID)  # 6, 7, 8 at rung 1; 7 best
    (s,) = opt.suggest(1)
    assert s.config == configs[7] and s.fidelity == opt.rungs[2]
    # rung 1 is then done (floor(3/3) = 1 and it went up); rung 0's top 3 are all at rung 1
    (s,) = opt.suggest(1, pending=[s])
    assert s.fidelity == opt.rungs[0]


def test_failed_results_are_never_promoted(space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=0)
    configs = grid(6)
    tell_all(opt, configs, [None, 4.0, None, None, None, 7.0], LOW)
    batch = opt.suggest(4)
    promoted = [s for s in batch if s.fidelity > opt.rungs[0]]
    # floor(6/3) = 2 slots and exactly two successes: both go up, best first
    assert [s.config for s in promoted] == [configs[1], configs[5]]
    failed = {space.key(configs[i]) for i in (0, 2, 3, 4)}
    assert not failed & {space.key(s.config) for s in batch}


def test_all_failed_promotes_nothing(space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=0)
    configs = grid(9)
    tell_all(opt, configs, [None] * 9, LOW)
    batch = opt.suggest(3)
    assert all(s.fidelity == opt.rungs[0] for s in batch)
    assert not {space.key(c) for c in configs} & {space.key(s.config) for s in batch}


# -- ask ----------------------------------------------------------------------------


@pytest.mark.parametrize("n_low", [3, 8], ids=["design", "model"])
def test_ask_never_returns_a_seen_config(n_low: int, space: Space) -> None:
    """With few results new configs come from a design, with enough from a GP."""
    opt = HyperbandOptimizer(space, seed=1)
    configs = space.sample(np.random.default_rng(0), n_low)
    tell_all(opt, configs, [bowl(c) for c in configs], LOW)
    tell_all(opt, configs[:2], [bowl(c) for c in configs[:2]], MID)
    pending = space.sample(np.random.default_rng(1), 2)
    batch = opt.ask(4, pending=pending)
    keys = [space.key(c) for c in batch]
    assert len(set(keys)) == 4
    assert not set(keys) & opt.seen()
    assert not set(keys) & {space.key(c) for c in pending}
    for config in batch:
        assert space.is_valid(config)


# -- a whole run ------------------------------------------------------------------------


def noisy_bowl(config: Config, fidelity: float, rng: np.random.Generator) -> float:
    """The bowl plus noise that shrinks with the run length: none at full fidelity."""
    return bowl(config) + 2.0 * (1.0 / fidelity - 1.0) * float(rng.normal())


@pytest.mark.parametrize("workers", [1, 2])
def test_a_simulated_run_promotes_only_through_the_rungs(workers: int, space: Space) -> None:
    opt = HyperbandOptimizer(space, seed=3)
    rungs = opt.rungs
    rng = np.random.default_rng(0)
    running: list[Suggestion] = []
    full: list[Config] = []
    for _ in range(45):
        while len(running) < workers:
            (s,) = opt.suggest(1, pending=running)
            key = space.key(s.config)
            r = rungs.index(s.fidelity)
            if r == 0:
                assert key not in opt.seen(), "a new config must be new"
            else:
                # ASHA: the config ran at the rung below, among its top 1/eta by loss,
                # and has neither run nor is running at this rung
                below = [(c, v) for c, v, f in opt.observations_ if math.isclose(f, rungs[r - 1])]
                ok = sorted((v, space.key(c)) for c, v in below if v is not None)
                top = [k for _, k in ok[: len(below) // opt.eta]]
                assert key in top, (s, below)
                here = [c for c, _, f in opt.observations_ if math.isclose(f, rungs[r])]
                assert key not in {space.key(c) for c in here}
                assert key not in {space.key(p.config) for p in running if p.fidelity == s.fidelity}
            running.append(s)
        done = running.pop(0)
        opt.tell(done.config, noisy_bowl(done.config, done.fidelity, rng), fidelity=done.fidelity)
        if done.fidelity == FULL:
            full.append(done.config)
    assert full, "the run should reach full fidelity"
    at = {f: {space.key(c) for c, _, g in opt.observations_ if g == f} for f in rungs}
    for config in full:
        assert space.key(config) in at[rungs[0]] and space.key(config) in at[rungs[1]]
    # screening pays: most runs were short, and the full runs are better than the average
    counts = [sum(1 for *_, f in opt.observations_ if f == g) for g in rungs]
    assert counts[0] > counts[1] > counts[2] > 0
    screened = [bowl(c) for c, _, f in opt.observations_ if f == rungs[0]]
    assert np.mean([bowl(c) for c in full]) < np.median(screened)

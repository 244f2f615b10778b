"""Each competitor spends exactly its budget on valid configs, baseline first."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.bench.competitors import (
    EXTERNAL,
    Evaluator,
    clamped_baseline,
    competitor_names,
    run_competitor,
    skopt_constraint,
    unavailable,
)
from autotune.bench.problems import PG_RECORDED, Problem, get_problem, load_recorded, recorded_space
from autotune.optimizers.skopt import from_skopt_point
from tests.conftest import INSTALL_DEV
from tests.conftest import unavailable as needs

BUDGET = 5


def _pg_like() -> Problem:
    """The recorded pgbench space with a cheap loss: special values and constraints, no model."""
    space = recorded_space(load_recorded(PG_RECORDED)["experiment"])
    return Problem(
        name="pg-like",
        description="test",
        space=space,
        objective=lambda c: float(np.sum(space.to_unit(c))),
        f_star_fn=lambda: 0.0,
    )


def _require(name: str) -> None:
    """A competitor from an optional library: skip (fail under CI) when it does not import."""
    reason = unavailable(name)
    if reason is not None:
        needs(f"competitor {name}: {reason}: {INSTALL_DEV}")


# optuna-gp needs PyTorch, which the dev install does not bring (see the test below).
PEERS = ["skopt-gp_minimize", "optuna-tpe", "optuna-tpe-uni", "smac3-hpo", "smac3-bb"]


def test_optuna_gp_runs_where_torch_imports_and_says_why_not_elsewhere() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        reason = unavailable("optuna-gp")
        # Without optuna (the lower-bounds run), optuna is what is missing first.
        assert reason is not None and reason.split()[0] in ("torch", "optuna"), reason
        assert reason.endswith(("No module named 'torch'", "No module named 'optuna'")), reason
        assert "optuna-gp" not in competitor_names()
        return
    ev = run_competitor("optuna-gp", get_problem("branin"), seed=0, budget=BUDGET)
    assert len(ev.evaluations) == BUDGET


def test_optuna_gp_gets_huge_integer_ranges_as_reals_and_proposes_integers() -> None:
    """GPSampler enumerates every value of an integer parameter (22 GB for RocksDB's
    bytes_per_sync, 0..16,777,216), so optuna-gp asks for such knobs as reals and the
    config rounds them; the TPE samplers keep Optuna's integers."""
    _require("optuna-tpe")
    import optuna

    from autotune.bench.competitors import GP_MAX_INTEGERS, _optuna_config

    problem = get_problem("rocksdb-readrandom-rf")
    knobs = {k.name: k for k in problem.space.knobs}
    assert int(knobs["bytes_per_sync"].hi) - int(knobs["bytes_per_sync"].lo) > GP_MAX_INTEGERS
    for relax in (True, False):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(8):
            trial = study.ask()
            config = _optuna_config(problem, trial, relax=relax)
            for name, knob in knobs.items():
                if knob.type == "integer":
                    assert isinstance(config[name], int), (name, config[name])
            kinds = {n: type(d).__name__ for n, d in trial.distributions.items()}
            if "bytes_per_sync" in kinds:
                want = "FloatDistribution" if relax else "IntDistribution"
                assert kinds["bytes_per_sync"] == want
            assert kinds["max_write_buffer_number"] == "IntDistribution"  # 2..8: an int
            study.tell(trial, 0.0)


@pytest.mark.parametrize("name", ["random", "gp", *PEERS])
def test_budget_valid_evaluations_baseline_first(name: str) -> None:
    _require(name)
    problem = get_problem("hartmann6-noisy")
    ev = run_competitor(name, problem, seed=1, budget=BUDGET)
    assert len(ev.evaluations) == BUDGET and ev.cost == BUDGET
    first = ev.evaluations[0].config
    assert first == problem.space.default() == clamped_baseline(problem)
    for e in ev.evaluations:
        assert problem.space.is_valid(e.config)
        for knob in problem.space.knobs:
            assert knob.validate(e.config[knob.name]) == e.config[knob.name]
        assert e.true == problem.objective(e.config) and e.observed is not None
    assert len({problem.space.key(e.config) for e in ev.evaluations}) >= BUDGET - 1


@pytest.mark.parametrize("name", ["gp", "optuna-tpe"])
def test_a_run_is_deterministic(name: str) -> None:
    _require(name)
    problem = get_problem("branin-noisy")
    a = run_competitor(name, problem, seed=3, budget=6)
    b = run_competitor(name, problem, seed=3, budget=6)
    assert [(e.config, e.observed) for e in a.evaluations] == [
        (e.config, e.observed) for e in b.evaluations
    ]


def test_smac_multi_fidelity_runs_short_runs_at_their_share_of_the_cost() -> None:
    _require("smac3-mf")
    from autotune.bench.competitors import SMAC_MIN_BUDGET

    problem = get_problem("hartmann6-noisy")
    ev = run_competitor("smac3-mf", problem, seed=1, budget=BUDGET)
    first = ev.evaluations[0]
    assert first.config == problem.space.default() and first.fidelity == 1.0
    fidelities = {round(e.fidelity, 6) for e in ev.evaluations}
    assert fidelities <= {round(SMAC_MIN_BUDGET, 6), round(1 / 3, 6), 1.0}
    assert round(SMAC_MIN_BUDGET, 6) in fidelities  # Hyperband's first rung: short runs
    assert len(ev.evaluations) > BUDGET  # short runs are cheap: more runs than the budget
    assert ev.spent(BUDGET) and ev.cost < BUDGET + 1
    assert sum(e.fidelity for e in ev.evaluations) == pytest.approx(ev.cost)
    assert all(problem.space.is_valid(e.config) for e in ev.evaluations)


def test_competitor_names_cover_autotune_and_installed_libraries() -> None:
    from autotune.optimizers import OPTIMIZERS

    names = competitor_names()
    assert set(OPTIMIZERS) <= set(names)
    for name in EXTERNAL:
        assert (name in names) == (unavailable(name) is None)
    assert unavailable("nope") == "unknown competitor"
    with pytest.raises(ValueError, match="unknown competitor"):
        run_competitor("nope", get_problem("branin"), 0, 1)


@pytest.mark.parametrize("name", ["optuna-tpe", "smac3-hpo", "smac3-bb", "smac3-mf"])
def test_peers_with_a_conditional_switch_start_at_the_real_default_and_can_propose_specials(
    name: str,
) -> None:
    """wal_buffers = -1 and commit_delay = 0 are special values outside their range:
    Optuna and SMAC reach them through a categorical switch (MLOS's encoding)."""
    _require(name)
    problem = _pg_like()
    ev = run_competitor(name, problem, seed=2, budget=12)
    assert ev.evaluations[0].config == problem.space.default()  # -1 and 0 included
    assert all(problem.space.is_valid(e.config) or e.true is None for e in ev.evaluations)
    seen = {(e.config["wal_buffers"], e.config["commit_delay"]) for e in ev.evaluations[1:]}
    in_range = [c for c in seen if c[0] != -1 and c[1] != 0]
    assert in_range, "the range side of the switch is searched too"
    special = [c for c in seen if c[0] == -1 or c[1] == 0]
    assert special, f"{name} never proposed a special value in 11 trials"


def test_each_peer_is_configured_as_its_docs_advise() -> None:
    """The configurations the benchmark rests on, pinned: a change here is a change of
    the comparison and must be deliberate."""
    from autotune.bench.competitors import optuna_sampler

    _require("optuna-tpe")
    problem = get_problem("branin")
    import optuna

    study = optuna.create_study(direction="minimize")
    tpe = optuna_sampler("optuna-tpe", problem, 0)
    assert tpe._is_multivariate(study) and tpe._group
    # What the sampler decides, not the argument: Optuna 5's TPE is multivariate for
    # one objective unless told otherwise, so None would not be univariate.
    uni = optuna_sampler("optuna-tpe-uni", problem, 0)
    assert not uni._is_multivariate(study) and not uni._group
    if unavailable("optuna-gp") is None:
        gp = optuna_sampler("optuna-gp", problem, 0)
        assert gp._deterministic is True  # branin without noise
        noisy = optuna_sampler("optuna-gp", get_problem("branin-noisy"), 0)
        assert noisy._deterministic is False
    _require("smac3-hpo")
    import tempfile

    from smac import BlackBoxFacade, HyperparameterOptimizationFacade, MultiFidelityFacade, Scenario
    from smac.intensifier.hyperband import Hyperband

    from autotune.bench.competitors import SMAC_INITIAL_CONFIGS, smac_facade, smac_space

    with tempfile.TemporaryDirectory() as tmp:
        scenario = Scenario(
            smac_space(problem, 0), deterministic=True, n_trials=40, seed=0, output_directory=tmp
        )
        for name, facade in (
            ("smac3-hpo", HyperparameterOptimizationFacade),
            ("smac3-bb", BlackBoxFacade),
        ):
            smac = smac_facade(name, scenario)
            assert type(smac) is facade
            assert smac._config_selector._retrain_after == 1
            assert smac._initial_design._n_configs == SMAC_INITIAL_CONFIGS
        mf_scenario = Scenario(
            smac_space(problem, 0),
            deterministic=True,
            n_trials=400,
            seed=0,
            output_directory=tmp,
            min_budget=1 / 9,
            max_budget=1.0,
        )
        mf = smac_facade("smac3-mf", mf_scenario)
        assert type(mf) is MultiFidelityFacade and type(mf._intensifier) is Hyperband
        assert mf._intensifier._eta == 3 and mf._config_selector._retrain_after == 1


def test_special_values_are_clamped_for_other_libraries() -> None:
    problem = _pg_like()
    default = problem.space.default()
    assert default["wal_buffers"] == -1 and default["commit_delay"] == 0
    clamped = clamped_baseline(problem)
    assert clamped["wal_buffers"] == 8 and clamped["commit_delay"] == 10
    assert {k: v for k, v in clamped.items() if v != default[k]}.keys() == {
        "wal_buffers",
        "commit_delay",
        "backend_flush_after",
    }


def test_evaluator_counts_a_constraint_breaking_config_as_failed() -> None:
    problem = _pg_like()
    ev = Evaluator(problem, seed=0)
    bad = {**problem.space.default(), "random_page_cost": 0.5}  # below seq_page_cost
    assert not problem.space.is_valid(bad)
    assert ev(bad) is None and ev.cost == 1.0 and ev.evaluations[0].true is None
    assert ev(problem.space.default()) is not None
    with pytest.raises(ValueError):
        ev({"random_page_cost": 1.0})


def test_evaluator_charges_the_trial_overhead_to_short_runs() -> None:
    problem = get_problem("branin")
    ev = Evaluator(problem, seed=0, overhead=0.3)
    ev(problem.space.default(), fidelity=1 / 9)
    assert ev.cost == pytest.approx((1 / 9 + 0.3) / 1.3)
    ev(problem.space.default())
    assert ev.cost == pytest.approx((1 / 9 + 0.3) / 1.3 + 1.0)


def test_skopt_constraint_agrees_with_the_space() -> None:
    from skopt.space import Space as SkoptSpace

    from autotune.optimizers.skopt import skopt_dimensions

    problem = _pg_like()
    check = skopt_constraint(problem)
    assert check is not None and skopt_constraint(get_problem("branin")) is None
    points = SkoptSpace(skopt_dimensions(problem.space)).rvs(400, random_state=0)
    expected = [problem.space.is_valid(from_skopt_point(problem.space, p)) for p in points]
    assert [check(p) for p in points] == expected
    assert 0 < sum(expected) < len(expected)

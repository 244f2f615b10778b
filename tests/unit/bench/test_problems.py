"""The benchmark problems: their optima, their noise, and the recorded surrogate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autotune.bench.problems import (
    BRANIN_MIN,
    HARTMANN6_ARGMIN,
    HARTMANN6_MIN,
    HARTMANN6_X4,
    MIN_R2,
    NOISE_SD,
    PG_RECORDED,
    PROBLEMS,
    RECORDED_DIR,
    ackley,
    branin,
    cv_r2,
    estimate_min,
    fit_surrogate,
    get_problem,
    hartmann6,
    is_counted,
    load_recorded,
    recorded_space,
    recorded_surrogate,
    training_trials,
)

SYNTHETIC = ["branin", "hartmann6", "ackley10"]


def test_textbook_optima() -> None:
    assert branin(math.pi, 2.275) == pytest.approx(0.397887, abs=1e-6)
    assert branin(-math.pi, 12.275) == pytest.approx(0.397887, abs=1e-6)
    assert hartmann6(HARTMANN6_ARGMIN) == pytest.approx(-3.32237, abs=1e-5)
    assert ackley(np.zeros(10)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_argmin_is_a_valid_config_with_the_optimum(name: str) -> None:
    problem = get_problem(name)
    assert problem.argmin is not None and problem.f_star_exact
    for knob in problem.space.knobs:
        assert knob.validate(problem.argmin[knob.name]) == problem.argmin[knob.name]
    assert problem.space.is_valid(problem.argmin)
    assert problem.objective(problem.argmin) == problem.f_star


def test_mixed_domain_optima() -> None:
    assert get_problem("branin").f_star == pytest.approx(0.397887, abs=1e-6) == BRANIN_MIN
    assert get_problem("ackley10").f_star == pytest.approx(0.0, abs=1e-12)
    # Hartmann-6 on the grid: no better than the continuous minimum, and within 4e-5 of it.
    f_star = get_problem("hartmann6").f_star
    assert HARTMANN6_MIN - 1e-5 <= f_star <= HARTMANN6_MIN + 4e-5


def test_hartmann6_mixed_minimum_is_recomputed() -> None:
    """Re-optimise the continuous dims in the grid cells next to the continuous argmin."""
    from scipy.optimize import minimize

    cells = [(k1, k2, "e") for k1 in (3, 4, 5) for k2 in (2, 3, 4)]
    cells += [(4, 3, level) for level in HARTMANN6_X4 if level != "e"]
    best = math.inf
    for k1, k2, level in cells:
        x4 = HARTMANN6_X4[level]

        def f(z: np.ndarray, k1: int = k1, k2: int = k2, x4: float = x4) -> float:
            return hartmann6([k1 / 20, k2 / 20, z[0], x4, z[1], z[2]])

        start = [HARTMANN6_ARGMIN[2], HARTMANN6_ARGMIN[4], HARTMANN6_ARGMIN[5]]
        found = minimize(f, start, method="L-BFGS-B", bounds=[(0, 1)] * 3)
        best = min(best, float(found.fun))
    assert get_problem("hartmann6").f_star == pytest.approx(best, abs=1e-7)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_regret_is_never_negative_and_the_default_is_not_optimal(name: str) -> None:
    problem = get_problem(name)
    configs = problem.space.sample(np.random.default_rng(0), 300)
    assert min(problem.objective(c) for c in configs) >= problem.f_star
    assert problem.objective(problem.space.default()) > problem.f_star + 1e-3


@pytest.mark.parametrize("name", SYNTHETIC)
def test_noise_sd_is_five_percent_of_the_spread(name: str) -> None:
    problem = get_problem(name)
    values = [problem.objective(c) for c in problem.space.sample(np.random.default_rng(1), 2000)]
    p5, p95 = np.percentile(values, [5, 95])
    assert NOISE_SD[name] == pytest.approx(0.05 * (p95 - p5), rel=0.15)


def test_noise_is_deterministic_and_only_on_noisy_variants() -> None:
    noisy, clean = get_problem("branin-noisy"), get_problem("branin")
    assert noisy.noise(3, 7) == noisy.noise(3, 7)
    assert noisy.noise(3, 7) != noisy.noise(3, 8) != noisy.noise(4, 7)
    assert clean.noise(3, 7) == 0.0
    # A shortened run is noisy even on a clean problem.
    assert clean.noise(3, 7, fidelity=1 / 9) != 0.0
    draws = np.array([noisy.noise(0, i) for i in range(4000)])
    assert draws.std() == pytest.approx(NOISE_SD["branin"], rel=0.1)
    config = noisy.space.default()
    assert noisy.observe(config, 1, 2) == noisy.objective(config) + noisy.noise(1, 2)


def test_every_problem_is_registered() -> None:
    assert set(PROBLEMS) >= {
        "branin",
        "hartmann6",
        "ackley10",
        "branin-noisy",
        "hartmann6-noisy",
        "ackley10-noisy",
        "pg-tpcb-rf",
        "pg-tpcb-oltp-rf",
        "pg-simple-update-rf",
        "pg-analytic-rf",
        "mariadb-sysbench-rf",
        "rocksdb-readrandom-rf",
    }
    with pytest.raises(ValueError, match="unknown problem"):
        get_problem("nope")


def test_recorded_pgbench_trials() -> None:
    data = load_recorded(PG_RECORDED)
    experiment, trials = data["experiment"], data["trials"]
    assert data["format"] == "autotune-experiment" and data["version"] == 2  # v1, read as v2
    settings = experiment["settings"]
    assert experiment["workload"]["name"] == "pgbench-tpcb" and settings["machine"]["cpus"] >= 1
    assert len(settings["knobs"]) == 12 and len(trials) == 80
    space = recorded_space(experiment)
    assert space.names == settings["knobs"]
    usable = training_trials(trials)
    assert len(usable) >= 70
    assert training_trials([{**trials[0], "fidelity": 1 / 3}]) == []


def test_surrogate_model_and_its_minimum_estimate() -> None:
    data = load_recorded(PG_RECORDED)
    space = recorded_space(data["experiment"])
    trials = training_trials(data["trials"])
    model = fit_surrogate(space, trials)
    X = space.encode_many(t["config"] for t in trials)
    assert model.get_params()["random_state"] == 0
    # Near the recorded values: the forest learned the data, not noise.
    y = np.array([t["objective"] for t in trials])
    assert np.corrcoef(model.predict(X), y)[0, 1] > 0.8

    def loss_many(configs: list[dict[str, object]]) -> np.ndarray:
        return -np.asarray(model.predict(space.encode_many(configs)))  # type: ignore[arg-type]

    known = [t["config"] for t in trials]
    found, config = estimate_min(space, loss_many, known, 50, n_starts=1, grid=9, max_sweeps=1)
    assert found <= float(loss_many(known).min())
    assert space.is_valid(config) and float(loss_many([config])[0]) == found


SURROGATES = [
    "pg-tpcb-oltp-rf",
    "pg-simple-update-rf",
    "mariadb-sysbench-rf",
    "rocksdb-readrandom-rf",
]
LATENCY = ["pg-analytic-rf"]  # p95 latency, to minimise


@pytest.mark.parametrize("name", SURROGATES + LATENCY)
def test_each_recorded_surrogate_fits_its_search_trials_and_states_its_r2(name: str) -> None:
    problem = PROBLEMS[name]()
    assert problem.name == name and not problem.f_star_exact
    data = load_recorded(problem.extra["recorded"])
    search = [t for t in data["trials"] if t.get("phase") in (None, "search")]
    assert problem.extra["trials"] == len(search)
    assert -1.0 < problem.extra["r2"] <= 1.0
    assert is_counted(problem) == (problem.extra["r2"] >= MIN_R2)
    # Throughput to maximise: the loss is its negative, so the best recorded trial scores
    # lowest; a latency is the loss itself.
    sign = 1.0 if name in LATENCY else -1.0
    best = min(search, key=lambda t: sign * float(t["objective"]))
    worst = max(search, key=lambda t: sign * float(t["objective"]))
    assert problem.objective(best["config"]) < problem.objective(worst["config"])
    assert (problem.objective(best["config"]) > 0) == (name in LATENCY)


def test_verification_runs_are_not_training_data() -> None:
    data = load_recorded(RECORDED_DIR / "rocksdb-db_bench-readrandom30.json")
    phases = {t.get("phase") for t in data["trials"]}
    assert phases == {"search", "verify"}
    assert {t["phase"] for t in training_trials(data["trials"])} == {"search"}


def test_cross_validated_r2_tells_a_learnable_objective_from_noise() -> None:
    data = load_recorded(PG_RECORDED)
    space = recorded_space(data["experiment"])
    trials = training_trials(data["trials"])
    X = space.encode_many(t["config"] for t in trials)
    learnable = [{**t, "objective": 1000.0 * float(x[0])} for t, x in zip(trials, X, strict=True)]
    rng = np.random.default_rng(0)
    noise = [{**t, "objective": float(rng.normal())} for t in trials]
    assert cv_r2(space, learnable) > 0.8
    assert cv_r2(space, noise) < MIN_R2


def test_a_latency_surrogate_is_minimised_as_recorded(tmp_path: object) -> None:
    import json
    from pathlib import Path

    data = json.loads(PG_RECORDED.read_text())
    data["experiment"]["direction"] = "minimize"
    path = Path(str(tmp_path)) / "latency.json"
    path.write_text(json.dumps(data))
    as_latency = recorded_surrogate(path, "lat", "a test", n_sample=10, n_starts=1)
    as_tps = get_problem("pg-tpcb-rf")
    config = as_tps.space.default()
    assert as_latency.objective(config) == pytest.approx(-as_tps.objective(config))
    assert "a test, tps from" in as_latency.description
    assert is_counted(get_problem("branin"))

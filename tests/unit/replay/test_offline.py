"""Offline replay: optimisers against a random forest fitted on a recorded experiment."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.replay import build_surrogate, repeat_noise, replay
from autotune.space import Space
from autotune.spec import Config, Spec
from autotune.store import Experiment, Store, Trial, now
from autotune.tuner import TuningError, summarize
from tests.unit._support import MACHINE, ROOT

SPEC_PATH = ROOT / "knobs" / "postgres.yaml"
KNOBS = ["shared_buffers", "work_mem", "random_page_cost"]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _one_blas_thread(one_blas_thread: None) -> Iterator[None]:
    yield


def tps(config: Config) -> float:
    """Only shared_buffers matters: more is better (1200 tps at the minimum, 1400 by default)."""
    return 100.0 * math.log2(float(config["shared_buffers"]))


def trial(number: int, config: Config, objective: float | None, **fields: object) -> Trial:
    return Trial(
        number=number,
        config=config,
        status="ok" if objective is not None else "failed",
        objective=objective,
        started_at=now(),
        finished_at=now(),
        metrics={} if objective is None else {"tps": objective},
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def space(postgres_spec: Spec) -> Space:
    return Space(postgres_spec, KNOBS, MACHINE)


@pytest.fixture
def recorded(store: Store, space: Space) -> Callable[..., Experiment]:
    """A postgres experiment: the baseline, ``n - 1`` sampled configs, plus one repeat of the
    baseline and a failed and a short run (neither of which a surrogate may learn from)."""

    def make(
        name: str = "pgx", n: int = 24, direction: str = "maximize", extras: bool = True
    ) -> Experiment:
        exp = store.create_experiment(
            name=name,
            system="postgres",
            spec_content=SPEC_PATH.read_text(),
            spec_hash="postgres-spec",
            spec_path=str(SPEC_PATH),
            workload_name="bench",
            workload_content="name: bench\n",
            workload_hash="bench",
            workload_path="bench.yaml",
            objective_metric="tps" if direction == "maximize" else "latency_avg_ms",
            direction=direction,
            optimizer="random",
            seed=0,
            settings={
                "knobs": KNOBS,
                "duration_s": 10.0,
                "machine": {"memory_bytes": MACHINE.memory_bytes, "cpus": MACHINE.cpus},
            },
        )

        def value(config: Config) -> float:
            return tps(config) if direction == "maximize" else 1.0e5 / tps(config)

        configs = [space.default(), *space.sample(np.random.default_rng(11), n - 1)]
        for number, config in enumerate(configs, start=1):
            store.add_trial(exp, trial(number, config, value(config), is_baseline=number == 1))
        if extras:
            base = space.default()
            store.add_trial(
                exp, trial(n + 1, base, value(base) + 3.0, is_baseline=True, repeat=True)
            )
            huge = {**base, "shared_buffers": 524288}
            store.add_trial(exp, trial(n + 2, huge, None))
            store.add_trial(exp, trial(n + 3, huge, 99999.0, fidelity=0.25))
        return exp

    return make


# -- repeat_noise -------------------------------------------------------------------------------


def test_repeat_noise_pools_the_spread_of_configs_run_more_than_once() -> None:
    a: Config = {"x": 1}
    b: Config = {"x": 2}
    c: Config = {"x": 3}
    trials = [
        trial(1, a, 10.0),
        trial(2, b, 20.0),
        trial(3, a, 12.0),
        trial(4, b, 24.0),
        trial(5, b, 22.0),
        trial(6, c, 500.0),  # run once: no information about noise
        trial(7, c, None),  # failed
        trial(8, c, 900.0, fidelity=0.5),  # a short run is not a repeat
    ]
    # a: mean 11, squares 1 + 1; b: mean 22, squares 4 + 4 + 0; 1 + 2 degrees of freedom.
    assert repeat_noise(trials) == pytest.approx(math.sqrt(10.0 / 3.0))
    assert repeat_noise(trials[:2] + trials[5:]) == 0.0
    assert repeat_noise([]) == 0.0


# -- build_surrogate ----------------------------------------------------------------------------


def test_a_surrogate_needs_ten_successful_full_length_trials(
    store: Store, recorded: Callable[..., Experiment]
) -> None:
    exp = recorded(n=9)  # 9 configs and a repeat of the baseline: 10 usable runs
    assert build_surrogate(store, exp).trials == 10
    few = recorded("few", n=8)  # 9 usable; the failed and the short run do not count
    with pytest.raises(
        TuningError,
        match=r"experiment 'few' has 9 successful full-length trials; a replay needs at least 10",
    ):
        build_surrogate(store, few)


def test_the_surrogate_learns_the_recorded_response(
    store: Store, recorded: Callable[..., Experiment], space: Space
) -> None:
    exp = recorded()
    s = build_surrogate(store, exp)
    assert s.trials == 25  # 24 configs + the baseline's repeat
    assert s.noise_sd == pytest.approx(3.0 / math.sqrt(2))  # the baseline run twice: 1400, 1403
    assert s.r2_cv is not None and s.r2_cv > 0.5
    # The recorded best is the summary's (as `experiments` and `best` show it): here the
    # baseline, the one config run twice, with the median of its runs.
    best = summarize(store, exp).best
    assert best is not None and s.recorded_best.number == best.number == 1
    assert (s.recorded_best_value, s.recorded_best_runs) == (1401.5, 2)
    assert s.recorded_best_predicted == pytest.approx(s.recorded_best_value, rel=0.05)
    # The problem's objective is a loss: maximising tps, lower is better.
    low, high = (
        {**space.default(), "shared_buffers": 4096},
        {**space.default(), "shared_buffers": 400000},
    )
    assert s.problem.objective(high) < s.problem.objective(low) < 0
    assert build_surrogate(store, exp, noise_sd=0.0).noise_sd == 0.0


# -- replay -------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["random", "gp"])
def test_replay_curves_are_best_so_far_and_start_from_the_baseline(
    store: Store, recorded: Callable[..., Experiment], space: Space, optimizer: str
) -> None:
    exp = recorded()
    s = build_surrogate(store, exp, noise_sd=0.0)
    baseline = -s.problem.objective(space.default())
    seeds_seen: list[int] = []
    runs = replay(s, optimizer, 8, 2, "maximize", progress=seeds_seen.append)
    assert seeds_seen == [0, 1] and [r.seed for r in runs] == [0, 1]
    for run in runs:
        assert len(run.curve) == 8
        assert run.curve[0] == pytest.approx(baseline)  # the first evaluation is the default
        assert all(b >= a for a, b in pairwise(run.curve))
        assert run.best == pytest.approx(run.curve[-1]) and run.best >= baseline
        assert 1 <= run.best_trial <= 8
        assert run.curve[run.best_trial - 1] == pytest.approx(run.best)
        if run.reached_recorded_at is not None:
            assert run.curve[run.reached_recorded_at - 1] >= s.recorded_best_predicted
            assert all(
                v < s.recorded_best_predicted for v in run.curve[: run.reached_recorded_at - 1]
            )
    if optimizer == "random":
        assert runs[0].curve != runs[1].curve  # seeds differ


def test_replay_when_minimising(
    store: Store, recorded: Callable[..., Experiment], space: Space
) -> None:
    exp = recorded("latency", direction="minimize")
    s = build_surrogate(store, exp, noise_sd=0.0)
    # The recorded best is the one `autotune best` names (the noise-aware summary's).
    summary_best = summarize(store, exp).best
    assert summary_best is not None and s.recorded_best.number == summary_best.number
    baseline = s.problem.objective(space.default())
    assert baseline > 0  # minimising: the loss is the latency itself
    (run,) = replay(s, "random", 10, 1, "minimize")
    assert run.curve[0] == pytest.approx(baseline)
    assert all(b <= a for a, b in pairwise(run.curve))
    assert run.best == pytest.approx(run.curve[-1]) and run.best <= baseline


# -- the CLI ------------------------------------------------------------------------------------


def test_replay_cli_prints_the_recorded_best_and_stores_the_analysis(
    store: Store, store_url: str, recorded: Callable[..., Experiment]
) -> None:
    exp = recorded()
    surrogate = build_surrogate(store, exp)
    best = surrogate.recorded_best
    result = runner.invoke(
        app,
        ["replay", "pgx", "--optimizer", "random", "--trials", "8", "--seeds", "2",
         "--store", store_url],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        f"recorded best   trial {best.number} of 27 (as `autotune best` names it): "
        f"{surrogate.recorded_best_value:.6g} tps measured"
    ) in result.stdout
    assert "surrogate: random forest on 25 trials of pgx" in result.stdout
    assert result.stdout.count("random seed ") == 2
    assert "replay random: median best " in result.stdout
    (analysis,) = store.analyses(exp, "replay")
    data = analysis.result
    assert (data["optimizer"], data["trials"], data["seeds"]) == ("random", 8, 2)
    assert data["recorded_best"]["trial"] == best.number
    assert data["surrogate"]["trials"] == 25
    assert [len(r["curve"]) for r in data["runs"]] == [8, 8]
    assert data["median_best"] == pytest.approx(float(np.median([r["best"] for r in data["runs"]])))


@pytest.mark.parametrize(
    "args",
    [
        ["--optimizer", "random", "--apply", "best"],
        [],
    ],
)
def test_replay_cli_needs_exactly_one_of_optimizer_and_apply(
    store_url: str, recorded: Callable[..., Experiment], args: list[str]
) -> None:
    recorded()
    result = runner.invoke(app, ["replay", "pgx", *args, "--store", store_url])
    assert result.exit_code == 2
    assert "give one of --optimizer (offline) or --apply best|TRIAL (live)" in result.stderr
    assert "Traceback" not in result.output


def test_replay_cli_errors_are_one_clear_line(
    store: Store, store_url: str, recorded: Callable[..., Experiment], tmp_path: Path
) -> None:
    recorded("few", n=5)
    result = runner.invoke(app, ["replay", "few", "--optimizer", "random", "--store", store_url])
    assert result.exit_code == 2
    assert "a replay needs at least 10" in result.stderr
    recorded()
    result = runner.invoke(app, ["replay", "pgx", "--optimizer", "nope", "--store", store_url])
    assert result.exit_code == 2 and "unknown optimizer 'nope'" in result.stderr
    assert store.analyses(store.require_experiment("pgx")) == []

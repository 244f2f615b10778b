"""Warm start: a past experiment's trials seed the optimiser once the baseline is in."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from autotune.agent import TrialOutcome
from autotune.space import Space
from autotune.spec import Config, Spec
from autotune.store import Experiment, Store, Trial, now
from autotune.tuner import (
    Scheduler,
    SessionOptions,
    TuningError,
    carry_config,
    check_warm_start,
    experiment_space,
    map_workload,
    open_experiment,
)
from autotune.tuner._warm import MIN_SOURCE_TRIALS, gauges, rates
from autotune.workloads import WorkloadDef
from tests.unit._support import MACHINE

NAMES = ["mem", "ratio", "mode"]
MACHINE_SETTINGS = {"memory_bytes": MACHINE.memory_bytes, "cpus": MACHINE.cpus}

# Per-second rates of a "similar" workload at ratio 0.5; counters, except the gauge.
RATES = {
    "pg.database.xact_commit": 500.0,
    "pg.wal.wal_bytes": 2.0e6,
    "host.cpu.user_s": 0.8,
    "pg.statio.heap_blks_hit": 4.0e4,
}
GAUGE = "pg.tables.n_live_tup"


def tps(config: Config) -> float:
    return 1000.0 * float(config["ratio"]) + (100.0 if config["mode"] == "b" else 0.0)


def internal(config: Config, seconds: float, speed: float = 1.0) -> dict[str, float]:
    """Counter totals over ``seconds`` at ``speed`` × RATES, shaped by the config; a gauge."""
    shape = 0.6 + 0.8 * float(config["ratio"])  # 1.0 at the default ratio 0.5
    out = {name: rate * speed * shape * seconds for name, rate in RATES.items()}
    out[GAUGE] = 100_000.0 * (1.0 + 0.1 * float(config["ratio"]))
    return out


def report(config: Config, seconds: float = 60.0) -> TrialOutcome:
    """What an agent would report: tps, and internal counters over ``seconds`` measured."""
    return TrialOutcome(
        status="ok",
        metrics={"tps": tps(config), **internal(config, seconds)},
        timings={"measure_s": seconds, "total_s": seconds + 2.0},
        started_at=now(),
        finished_at=now(),
    )


@pytest.fixture
def space(toy_spec: Spec) -> Space:
    return Space(toy_spec, NAMES, MACHINE)


@pytest.fixture
def experiment(make_experiment: Callable[..., Experiment]) -> Callable[..., Experiment]:
    def make(name: str, warm_start: str = "none", budget: int = 5, **overrides: Any) -> Experiment:
        settings = {
            "knobs": NAMES,
            "duration_s": None,
            "budget": budget,
            "parallelism": 1,
            "machine": MACHINE_SETTINGS,
            "warm_start": warm_start,
            **overrides.pop("settings", {}),
        }
        overrides.setdefault("optimizer", "random")
        return make_experiment(name, settings=settings, **overrides)

    return make


def past_configs(space: Space, n: int, seed: int) -> list[Config]:
    """The default, then ``n - 1`` distinct sampled configs."""
    out = [space.default()]
    keys = {space.key(out[0])}
    for config in space.sample(np.random.default_rng(seed), 10 * n):
        if space.key(config) not in keys:
            keys.add(space.key(config))
            out.append(config)
        if len(out) == n:
            return out
    raise AssertionError("not enough distinct configs")


def fill(
    store: Store,
    exp: Experiment,
    configs: list[Config],
    *,
    level: float = 1.0,
    seconds: float = 10.0,
    speed: float | None = None,
    noise_seed: int = 1,
    extra: dict[str, float] | None = None,
) -> list[Trial]:
    """Finished trials: trial 1 (the first config) is the baseline; tps × ``level``;
    with ``speed``, internal counters too, measured over ``seconds``."""
    rng = np.random.default_rng(noise_seed)
    trials = []
    for number, config in enumerate(configs, start=1):
        metrics = {"tps": tps(config) * level}
        if speed is not None:
            for name, value in {**internal(config, seconds, speed), **(extra or {})}.items():
                metrics[name] = value * (1 + 0.02 * rng.standard_normal())
        trial = Trial(
            number=number,
            config=config,
            status="ok",
            objective=metrics["tps"],
            started_at=now(),
            finished_at=now(),
            is_baseline=number == 1,
            metrics=metrics,
            timings={"measure_s": seconds, "total_s": seconds + 2.0},
        )
        store.add_trial(exp, trial)
        trials.append(trial)
    return trials


def lease_and_report(scheduler: Scheduler, seconds: float = 60.0) -> int:
    lease = scheduler.lease("a")
    assert lease is not None
    scheduler.report("a", lease.trial_id, lease.lease_id, report(lease.config, seconds))
    return lease.number


def observations(scheduler: Scheduler, exp: Experiment) -> list[tuple[Config, float | None]]:
    return [(c, loss) for c, loss, _ in scheduler._cache[exp.id].optimizer.observations_]


# -- a named source -----------------------------------------------------------------------------


def test_a_named_source_seeds_the_optimiser_after_the_baseline_and_again_on_restart(
    store: Store, experiment: Callable[..., Experiment], space: Space
) -> None:
    source = experiment("src", budget=12)
    configs = past_configs(space, 12, seed=7)
    fill(store, source, configs, level=0.4)  # a slower machine: baseline 200 tps, not 500
    exp = experiment("new", warm_start="src", budget=6)
    scheduler = Scheduler(store)

    # The baseline is leased; until it has finished nothing is known to scale by.
    first = scheduler.lease("a")
    assert first is not None and first.is_baseline
    assert observations(scheduler, exp) == []
    assert "warm_start_from" not in store.require_experiment("new").settings

    scheduler.report("a", first.trial_id, first.lease_id, report(first.config))
    assert lease_and_report(scheduler) == 2  # proposing trial 2 resolved the warm start
    told = observations(scheduler, exp)
    scale = 500.0 / 200.0
    carried = [(c, -tps(c) * 0.4 * scale) for c in configs]
    assert len(told) == len(configs) + 1
    assert told[: len(configs)] == pytest.approx(carried)  # the source's, first, scaled
    assert told[-1] == (space.default(), -500.0)  # then this experiment's own baseline
    recorded = store.require_experiment("new").settings["warm_start_from"]
    assert recorded == {
        "experiment": "src",
        "distance": None,
        "scale": pytest.approx(scale),
        "observations": len(configs),
        "through": 12,  # the source's last finished trial
    }
    # Seeded: the random optimiser never proposes a config the source already measured.
    keys = {space.key(c) for c in configs}
    assert space.key(store.trials(exp)[1].config) not in keys

    # Meanwhile the source, still running, finishes another trial, and this experiment's
    # baseline is measured again (as racing does) at 700: median 600, not 500.
    late = past_configs(space, 13, seed=7)[-1]
    fill_one = Trial(number=13, config=late, status="ok", objective=900.0, started_at=now(),
                     finished_at=now(), metrics={"tps": 900.0})  # fmt: skip
    store.add_trial(source, fill_one)
    store.add_trial(
        exp,
        Trial(number=3, config=space.default(), status="ok", objective=700.0, started_at=now(),
              finished_at=now(), is_baseline=True, repeat=True, metrics={"tps": 700.0}),
    )  # fmt: skip

    # A restarted scheduler on the same store seeds the same way, from the recorded decision.
    again = Scheduler(store)
    trials, optimizer = again._history(store.require_experiment("new"))
    assert [t.number for t in trials] == [1, 2, 3]
    own = [(t.config, -float(t.objective or 0)) for t in trials]
    assert [(c, loss) for c, loss, _ in optimizer.observations_] == pytest.approx([*carried, *own])
    assert store.require_experiment("new").settings["warm_start_from"] == recorded
    while (lease := again.lease("a")) is not None:
        again.report("a", lease.trial_id, lease.lease_id, report(lease.config))
    done = store.trials(exp)
    assert len(done) == 6 and all(t.ok for t in done)
    assert not {space.key(t.config) for t in done if not t.is_baseline} & keys


def test_a_failed_baseline_delays_the_warm_start(
    store: Store, experiment: Callable[..., Experiment], space: Space
) -> None:
    fill(store, experiment("src", budget=10), past_configs(space, 10, seed=3))
    exp = experiment("new", warm_start="src", budget=6)
    scheduler = Scheduler(store)
    lease = scheduler.lease("a")
    assert lease is not None and lease.is_baseline
    broken = TrialOutcome(status="failed", error="boom", started_at=now(), finished_at=now())
    scheduler.report("a", lease.trial_id, lease.lease_id, broken)
    again = scheduler.lease("a")  # the baseline once more
    assert again is not None and again.is_baseline
    assert len(observations(scheduler, exp)) == 1  # only the failed baseline
    assert "warm_start_from" not in store.require_experiment("new").settings
    scheduler.report("a", again.trial_id, again.lease_id, report(again.config))
    lease_and_report(scheduler)
    assert len(observations(scheduler, exp)) == 10 + 2
    assert store.require_experiment("new").settings["warm_start_from"]["experiment"] == "src"


def test_no_warm_start_asked_tells_only_the_experiments_own_trials(
    store: Store, experiment: Callable[..., Experiment], space: Space
) -> None:
    fill(store, experiment("src", budget=10), past_configs(space, 10, seed=3))
    exp = experiment("new", budget=4)
    scheduler = Scheduler(store)
    lease_and_report(scheduler)
    lease_and_report(scheduler)
    assert len(observations(scheduler, exp)) == 1
    assert "warm_start_from" not in store.require_experiment("new").settings


# -- auto: workload mapping by internal metrics -------------------------------------------------


def test_rates_divide_counters_by_the_measured_seconds_and_keep_gauges() -> None:
    trial = Trial(
        number=1,
        config={},
        status="ok",
        objective=10.0,
        started_at=None,
        finished_at=None,
        metrics={
            "tps": 10.0,  # no dot: the workload's own, not an internal metric
            "pg.database.xact_commit": 600.0,
            GAUGE: 1000.0,
            "host.mem.available_bytes": 5.0e9,
            "pg.wal.wal_bytes": math.nan,
        },
        timings={"measure_s": 60.0},
    )
    assert rates(trial, gauges()) == {
        "pg.database.xact_commit": 10.0,
        GAUGE: 1000.0,
        "host.mem.available_bytes": 5.0e9,
    }
    unmeasured = dataclasses.replace(trial, timings={})
    assert rates(unmeasured, gauges()) == {GAUGE: 1000.0, "host.mem.available_bytes": 5.0e9}


def test_auto_maps_by_metric_rates_not_totals(
    store: Store, experiment: Callable[..., Experiment], space: Space
) -> None:
    # "similar": the same per-second rates, measured over 10 s. "different": ten times
    # the rates over 6 s, so its totals are the ones closest to the new 60 s runs'.
    similar = experiment("similar", budget=12)
    fill(store, similar, past_configs(space, 12, seed=5), level=0.5, seconds=10.0, speed=1.0)
    different = experiment("different", budget=12)
    fill(store, different, past_configs(space, 12, seed=6), seconds=6.0, speed=10.0)
    exp = experiment("new", warm_start="auto", budget=4)
    scheduler = Scheduler(store)
    lease_and_report(scheduler, seconds=60.0)  # the baseline, 60 s measured
    new_baseline = store.trials(exp)[0]
    different_baseline = store.trials(different)[0]
    for name in RATES:  # the totals really do point the wrong way
        assert different_baseline.metrics[name] == pytest.approx(
            new_baseline.metrics[name], rel=0.1
        )

    ranked = map_workload(store, exp, experiment_space, store.trials(exp))
    assert [c.experiment.name for c in ranked] == ["similar", "different"]
    near, far = ranked
    assert near.distance is not None and far.distance is not None
    assert near.distance < 1.0 < far.distance
    assert near.metrics == len(RATES) + 1  # the counters and the gauge

    lease_and_report(scheduler, seconds=60.0)
    recorded = store.require_experiment("new").settings["warm_start_from"]
    assert recorded["experiment"] == "similar"
    assert recorded["distance"] == pytest.approx(near.distance)
    assert recorded["scale"] == pytest.approx(500.0 / 250.0)
    assert recorded["observations"] == 12 and recorded["through"] == 12
    told = observations(scheduler, exp)
    assert len(told) == 12 + 1
    assert [c for c, _ in told[:12]] == [t.config for t in store.trials(similar)]


def test_auto_maps_on_the_candidates_pruned_metrics_when_analysed(
    store: Store, experiment: Callable[..., Experiment], space: Space
) -> None:
    similar = experiment("similar", budget=12)
    fill(store, similar, past_configs(space, 12, seed=5), level=0.5, seconds=10.0, speed=1.0)
    exp = experiment("new", warm_start="auto", budget=4)
    lease_and_report(Scheduler(store), seconds=60.0)
    (everything,) = map_workload(store, exp, experiment_space, store.trials(exp))
    assert everything.metrics == len(RATES) + 1

    pruned = ["pg.database.xact_commit", "pg.wal.wal_bytes", "host.cpu.user_s"]
    store.add_analysis(similar, "analyze", {"metrics": {"representatives": pruned}})
    (mapped,) = map_workload(store, exp, experiment_space, store.trials(exp))
    assert mapped.metrics == 3 and mapped.distance is not None

    # Too few of the representatives were measured here: all shared metrics are used.
    store.add_analysis(similar, "analyze", {"metrics": {"representatives": pruned[:2]}})
    (fallback,) = map_workload(store, exp, experiment_space, store.trials(exp))
    assert fallback.metrics == len(RATES) + 1


def test_one_metric_constant_in_a_candidate_cannot_decide_the_mapping(
    store: Store, experiment: Callable[..., Experiment], space: Space
) -> None:
    # "similar" matches every rate but one it hardly varied: a per-run count (sessions
    # opened) that shows up as a rate depending on the run's length. Standardised by its
    # tiny spread it would be hundreds of standard deviations off and decide alone.
    sessions = "pg.database.sessions"
    similar = experiment("similar", budget=12)
    configs = past_configs(space, 12, seed=5)
    fill(store, similar, configs, level=0.5, speed=1.0, extra={sessions: 10.0})
    different = experiment("different", budget=12)
    fill(store, different, past_configs(space, 12, seed=6), speed=3.0, extra={sessions: 30.0})
    exp = experiment("new", warm_start="auto", budget=4)
    scheduler = Scheduler(store)
    lease = scheduler.lease("a")
    assert lease is not None
    outcome = report(lease.config, 10.0)
    outcome.metrics[sessions] = 50.0  # 5 per second, against 1 and 3
    scheduler.report("a", lease.trial_id, lease.lease_id, outcome)
    ranked = map_workload(store, exp, experiment_space, store.trials(exp))
    assert [c.experiment.name for c in ranked] == ["similar", "different"]
    assert ranked[0].distance is not None and ranked[0].distance < 2.0


def test_auto_leaves_out_experiments_of_another_objective(
    store: Store, experiment: Callable[..., Experiment], space: Space
) -> None:
    other = experiment(
        "latency", budget=12, direction="minimize", objective_metric="latency_p95_ms"
    )
    fill(store, other, past_configs(space, 12, seed=5), seconds=10.0, speed=1.0)
    exp = experiment("new", warm_start="auto")
    lease_and_report(Scheduler(store))
    assert map_workload(store, exp, experiment_space, store.trials(exp)) == []


def test_auto_without_a_usable_candidate_records_none_and_proposes_normally(
    store: Store, experiment: Callable[..., Experiment], space: Space
) -> None:
    # Candidates that cannot be scored: too few trials, and no internal metrics at all.
    fill(store, experiment("few", budget=5), past_configs(space, MIN_SOURCE_TRIALS - 1, seed=1),
         seconds=10.0, speed=1.0)  # fmt: skip
    fill(store, experiment("bare", budget=10), past_configs(space, 10, seed=2))
    exp = experiment("new", warm_start="auto", budget=5)
    scheduler = Scheduler(store)
    lease_and_report(scheduler)
    lease_and_report(scheduler)
    assert store.require_experiment("new").settings["warm_start_from"] == {
        "experiment": None,
        "reason": "no similar past experiment",
    }
    assert len(observations(scheduler, exp)) == 1  # only its own baseline
    # Decided once: a restarted scheduler does not map again, and tuning runs to the end.
    again = Scheduler(store)
    while (lease := again.lease("a")) is not None:
        again.report("a", lease.trial_id, lease.lease_id, report(lease.config))
    assert [t.status for t in store.trials(exp)] == ["ok"] * 5
    assert len(again._cache[exp.id].optimizer.observations_) == 4
    assert store.require_experiment("new").settings["warm_start_from"]["experiment"] is None


# -- check_warm_start ---------------------------------------------------------------------------


def test_check_warm_start(
    store: Store, experiment: Callable[..., Experiment], space: Space
) -> None:
    fill(store, experiment("good", budget=10), past_configs(space, 10, seed=1))
    thin = experiment("thin", budget=10)
    fill(store, thin, past_configs(space, MIN_SOURCE_TRIALS - 1, seed=2))
    store.add_trial(
        thin,
        Trial(number=50, config=space.default(), status="failed", objective=None,
              started_at=now(), finished_at=now()),
    )  # fmt: skip
    store.add_trial(
        thin,
        Trial(number=51, config=space.default(), status="ok", objective=300.0,
              started_at=now(), finished_at=now(), fidelity=0.25),
    )  # fmt: skip
    fill(
        store,
        experiment("pg", budget=10, system="postgres", spec_hash="pg"),
        past_configs(space, 10, seed=3),
    )

    assert check_warm_start(store, None, "toy", "tps") == "none"
    assert check_warm_start(store, "none", "toy", "tps") == "none"
    assert check_warm_start(store, "auto", "toy", "tps") == "auto"
    assert check_warm_start(store, "good", "toy", "tps") == "good"
    with pytest.raises(TuningError, match=r"no experiment 'nope'.*auto, none, or one of: good, "):
        check_warm_start(store, "nope", "toy", "tps")
    with pytest.raises(TuningError, match=r"'pg' tuned postgres for tps, not toy for tps"):
        check_warm_start(store, "pg", "toy", "tps")
    with pytest.raises(TuningError, match=r"'good' tuned toy for tps, not toy for latency"):
        check_warm_start(store, "good", "toy", "latency_p95_ms")
    # A failed and a short run do not count.
    with pytest.raises(TuningError, match=rf"'thin' has {MIN_SOURCE_TRIALS - 1} successful.*"
                       rf"at least {MIN_SOURCE_TRIALS}"):  # fmt: skip
        check_warm_start(store, "thin", "toy", "tps")


# -- carry_config -------------------------------------------------------------------------------


def test_carry_config_keeps_shared_knobs_clips_and_falls_back_to_defaults(
    toy_spec: Spec,
) -> None:
    space = Space(toy_spec, ["mem", "ratio", "mode", "workers", "auto"], MACHINE)
    default = space.default()
    assert carry_config({}, space) == default
    kept: Config = {"mem": 8192, "ratio": 0.7, "mode": "c", "workers": 3, "auto": -1}
    assert carry_config({**kept, "cost": 5.0, "gone": 1}, space) == kept  # others ignored
    carried = carry_config({"mem": 1, "ratio": 7.5, "mode": "z", "workers": 99, "auto": 0}, space)
    assert carried == {"mem": 64, "ratio": 1.0, "mode": "a", "workers": 8, "auto": 1}
    assert carry_config({"auto": 5000, "workers": -4}, space) == {
        **default,
        "auto": 1000,
        "workers": 0,
    }
    assert carry_config({"ratio": 0.01}, space) == {**default, "ratio": 0.1}
    assert carry_config({"mode": 3, "jit": "yes"}, space) == default  # wrong types: defaults


def test_carry_config_refuses_a_config_that_breaks_a_constraint_here(toy_spec: Spec) -> None:
    space = Space(toy_spec, ["buffers", "mem"], MACHINE)  # buffers + 10 * mem <= 1GB
    assert carry_config({"buffers": 131072, "mem": 262144}, space) is None
    assert carry_config({"buffers": 16384, "mem": 8192}, space) == {"buffers": 16384, "mem": 8192}
    # Clipped to this spec's bound, the value still breaks the constraint with the
    # default buffers: the config cannot be carried.
    assert carry_config({"mem": 10**9}, Space(toy_spec, ["mem"], MACHINE)) is None


# -- resuming -----------------------------------------------------------------------------------


def test_resuming_with_another_warm_start_is_refused(
    store: Store, toy_spec: Spec, make_workload: Callable[..., WorkloadDef]
) -> None:
    workload = make_workload()
    options = SessionOptions(
        name="exp", optimizer="random", seed=0, duration_s=None, knobs=NAMES,
        allow_unsafe=False, target="managed sandbox", machine=MACHINE_SETTINGS,
    )  # fmt: skip
    exp, resumed = open_experiment(store, toy_spec, workload, options)
    assert not resumed and exp.settings["warm_start"] == "none"
    with pytest.raises(TuningError, match=r"--warm-start is 'auto', recorded 'none'"):
        open_experiment(store, toy_spec, workload, dataclasses.replace(options, warm_start="auto"))
    _, resumed = open_experiment(store, toy_spec, workload, options)
    assert resumed

    warm = dataclasses.replace(options, name="warm", warm_start="src")
    open_experiment(store, toy_spec, workload, warm)
    for other in ("none", "auto", "elsewhere"):
        with pytest.raises(TuningError, match=rf"--warm-start is '{other}', recorded 'src'"):
            open_experiment(store, toy_spec, workload, dataclasses.replace(warm, warm_start=other))
    assert open_experiment(store, toy_spec, workload, warm)[1] is True

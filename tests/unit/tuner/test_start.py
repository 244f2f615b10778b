"""Starting points: pgtune's config as the first search trial, once, carried into the space."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from autotune.agent import TrialOutcome
from autotune.space import Space
from autotune.spec import Config, Machine, Spec
from autotune.store import Experiment, Store, now
from autotune.tuner import (
    Scheduler,
    TuningError,
    carry_config,
    check_start_with,
    default_start_with,
    pgtune_arm,
    start_configs,
)
from tests.unit._support import MACHINE, ROOT

KNOBS = ["shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "commit_delay"]
SETTINGS_MACHINE = {"memory_bytes": MACHINE.memory_bytes, "cpus": MACHINE.cpus}
PGBENCH = (ROOT / "workloads" / "pgbench-tpcb.yaml").read_text()


@pytest.fixture
def pg_exp(
    make_experiment: Callable[..., Experiment], postgres_spec: Spec
) -> Callable[..., Experiment]:
    def make(knobs: list[str] = KNOBS, **settings: Any) -> Experiment:
        return make_experiment(
            "pg",
            system="postgres",
            spec_content=postgres_spec.source,
            spec_path=postgres_spec.path,
            workload_name="pgbench-tpcb",
            workload_content=PGBENCH,
            optimizer="random",
            settings={
                "knobs": knobs,
                "duration_s": None,
                "budget": 6,
                "parallelism": 1,
                "machine": SETTINGS_MACHINE,
                **settings,
            },
        )

    return make


def starting(exp: Experiment, value: str | None) -> Experiment:
    """The experiment as if recorded with ``start_with = value`` (None: left out)."""
    settings = {k: v for k, v in exp.settings.items() if k != "start_with"}
    return dataclasses.replace(
        exp, settings=settings | ({} if value is None else {"start_with": value})
    )


def ok(config: Config, fail: bool = False) -> TrialOutcome:
    return TrialOutcome(
        status="failed" if fail else "ok",
        metrics={} if fail else {"tps": 100.0 + float(config["random_page_cost"])},
        error="it broke" if fail else None,
        timings={"measure_s": 1.0, "total_s": 1.5},
        started_at=now(),
        finished_at=now(),
    )


def test_the_option_is_checked_up_front(
    postgres_spec: Spec, toy_spec: Spec, make_spec: Callable[..., Spec]
) -> None:
    assert check_start_with(None, postgres_spec) == "none"
    assert check_start_with("none", toy_spec) == "none"
    assert check_start_with("pgtune", postgres_spec) == "pgtune"
    with pytest.raises(TuningError, match=r"--start-with 'pgtnue': choose one of none, pgtune"):
        check_start_with("pgtnue", postgres_spec)
    with pytest.raises(TuningError, match=r"--start-with pgtune is for postgres, not 'toy'"):
        check_start_with("pgtune", toy_spec)
    # Within the knobs tuned: what is left at its default must still fit pgtune's values.
    assert check_start_with("pgtune", postgres_spec, KNOBS, SETTINGS_MACHINE, PGBENCH) == "pgtune"
    big = {"memory_bytes": 64 * 1024**3, "cpus": 4}  # shared_buffers 16 GB, cache 4 GB
    big_spec = make_spec(postgres_spec.source, postgres_spec.path, Machine(**big))
    with pytest.raises(
        TuningError,
        match=r"^--start-with pgtune: pgtune's config breaks shared_buffers <= "
        r"effective_cache_size within the knobs tuned$",
    ):
        check_start_with("pgtune", big_spec, ["shared_buffers"], big, PGBENCH)
    with pytest.raises(TuningError, match=r"pgtune's config is the default within the knobs"):
        check_start_with("pgtune", postgres_spec, ["commit_delay"], SETTINGS_MACHINE, PGBENCH)


def test_left_out_it_is_pgtune_where_pgtune_has_a_config_to_try(
    postgres_spec: Spec, toy_spec: Spec, make_spec: Callable[..., Spec]
) -> None:
    assert check_start_with(None, postgres_spec, KNOBS, SETTINGS_MACHINE, PGBENCH) == "pgtune"
    assert default_start_with(postgres_spec, KNOBS, SETTINGS_MACHINE, PGBENCH) == ("pgtune", "")
    # Where the explicit option would be refused, the default is none, not an error, and
    # the note says why.
    assert check_start_with(None, postgres_spec, ["commit_delay"], SETTINGS_MACHINE) == "none"
    assert default_start_with(postgres_spec, ["commit_delay"], SETTINGS_MACHINE) == (
        "none",
        "not starting from pgtune's config: pgtune's config is the default within the knobs tuned",
    )
    big = {"memory_bytes": 64 * 1024**3, "cpus": 4}
    big_spec = make_spec(postgres_spec.source, postgres_spec.path, Machine(**big))
    assert check_start_with(None, big_spec, ["shared_buffers"], big, PGBENCH) == "none"
    value, why = default_start_with(big_spec, ["shared_buffers"], big, PGBENCH)
    assert value == "none" and "breaks shared_buffers <= effective_cache_size" in why
    toy = {"memory_bytes": MACHINE.memory_bytes, "cpus": MACHINE.cpus}
    assert default_start_with(toy_spec, list(toy_spec.knobs)[:1], toy) == ("none", "")
    # Without the knobs or the machine there is nothing to check pgtune against.
    assert check_start_with(None, postgres_spec) == "none"
    # Given, the option is kept as given.
    assert check_start_with("none", postgres_spec, KNOBS, SETTINGS_MACHINE, PGBENCH) == "none"


def test_pgtunes_config_is_carried_into_the_space(
    pg_exp: Callable[..., Experiment], postgres_spec: Spec
) -> None:
    exp = pg_exp(start_with="pgtune")
    space = Space(postgres_spec, KNOBS, MACHINE)
    [config] = start_configs(exp, space)
    tuned = pgtune_arm(postgres_spec, SETTINGS_MACHINE, PGBENCH, restartable=True)
    assert tuned is not None
    assert set(config) == set(KNOBS)  # pgtune's other knobs are outside the space
    assert config == carry_config(tuned, space)
    # pgtune sizes memory for the machine (16 GiB): not the defaults.
    assert config["shared_buffers"] == tuned["shared_buffers"] != space.default()["shared_buffers"]
    assert config["commit_delay"] == space.default()["commit_delay"]  # pgtune leaves it be
    assert start_configs(starting(exp, "none"), space) == []
    assert start_configs(starting(exp, None), space) == []  # recorded before the option


def test_pgtune_is_the_first_search_trial_once(
    store: Store, pg_exp: Callable[..., Experiment], postgres_spec: Spec
) -> None:
    exp = pg_exp(start_with="pgtune")
    [start] = start_configs(exp, Space(postgres_spec, KNOBS, MACHINE))
    scheduler = Scheduler(store)
    baseline = scheduler.lease("a")
    assert baseline is not None and baseline.is_baseline
    scheduler.report("a", baseline.trial_id, baseline.lease_id, ok(baseline.config))
    second = scheduler.lease("a")
    assert second is not None and second.number == 2 and second.config == start
    # It fails; a new scheduler (a restarted service) does not try it again.
    scheduler.report("a", second.trial_id, second.lease_id, ok(second.config, fail=True))
    again = Scheduler(store)
    configs = []
    while (lease := again.lease("a")) is not None:
        configs.append(lease.config)
        again.report("a", lease.trial_id, lease.lease_id, ok(lease.config))
    assert len(configs) == 4 and start not in configs
    trials = store.trials(exp)
    assert [t.config == start for t in trials] == [False, True, False, False, False, False]


def test_without_the_option_the_optimiser_proposes_the_second_trial(
    store: Store, pg_exp: Callable[..., Experiment], postgres_spec: Spec
) -> None:
    exp = pg_exp()
    [start] = start_configs(starting(exp, "pgtune"), Space(postgres_spec, KNOBS, MACHINE))
    scheduler = Scheduler(store)
    while (lease := scheduler.lease("a")) is not None:
        scheduler.report("a", lease.trial_id, lease.lease_id, ok(lease.config))
    assert len(store.trials(exp)) == 6
    assert all(t.config != start for t in store.trials(exp))

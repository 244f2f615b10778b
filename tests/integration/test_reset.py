"""Every write trial starts from the loaded data: real PostgreSQL, real pgbench writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autotune.agent import Agent
from autotune.spec import load_spec
from autotune.systems.postgres import PostgresSystem, Sandbox
from autotune.workloads import load_workload, make_workload
from tests.conftest import DATA, ROOT

pytestmark = pytest.mark.pg

TINY_TPCB = DATA / "workloads" / "tiny-tpcb.yaml"  # scale 1, 2 clients, 1 s warm-up
TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")


def _state(system: PostgresSystem) -> dict[str, Any]:
    """Row counts, the accounts' balance total and every table's dead tuples."""
    with system.connect() as conn, conn.cursor() as cur:
        out: dict[str, Any] = {}
        for table in TABLES:  # constants, not input
            cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
            out[table] = cur.fetchone()[0]
        cur.execute("SELECT sum(abalance) FROM pgbench_accounts")
        out["abalance"] = cur.fetchone()[0]
        cur.execute(
            "SELECT relname, n_dead_tup FROM pg_stat_user_tables"
            " WHERE relname LIKE 'pgbench%' ORDER BY relname"
        )
        out["n_dead_tup"] = dict(cur.fetchall())
        return out


def _trials(workdir: Path, reset: bool) -> tuple[dict[str, Any], list[dict[str, Any]], list[Any]]:
    """Three write trials; the state is read when each one's warm-up starts, after the
    reset and settle phases, so it is what the trial starts from."""
    spec = load_spec(ROOT / "knobs" / "postgres.yaml")
    system = PostgresSystem(spec, sandbox=Sandbox(root=workdir / "sandboxes"))
    agent = Agent(system, make_workload(load_workload(str(TINY_TPCB))), 2, reset=reset)
    seen: list[dict[str, Any]] = []
    outcomes = []
    try:
        agent.start()
        loaded = _state(system)

        def phase(name: str) -> None:
            if name == "warmup":
                seen.append(_state(system))

        for config in ({}, {"work_mem": "8MB"}, {"shared_buffers": "64MB"}):  # a restart too
            outcomes.append(agent.run_trial(config, phase))
    finally:
        agent.stop()
    return loaded, seen, outcomes


def test_every_write_trial_starts_from_the_loaded_state(workdir: Path) -> None:
    loaded, seen, outcomes = _trials(workdir, reset=True)
    assert [o.status for o in outcomes] == ["ok"] * 3, [o.error for o in outcomes]
    assert all(o.metrics["transactions"] > 20 for o in outcomes)  # each trial wrote
    assert loaded["pgbench_history"] == 0 and set(loaded["n_dead_tup"].values()) == {0}
    assert seen == [loaded] * 3
    for o in outcomes:  # the reset and the settle are phases of the trial, timed
        assert o.timings["reset_s"] > 0 and o.timings["settle_s"] > 0
        assert [p[0] for p in o.status_history][:4] == ["apply", "reset", "settle", "warmup"]
        assert o.timings["settle.prewarmed_blocks"] > 0


def test_without_the_reset_each_trial_starts_where_the_last_one_stopped(workdir: Path) -> None:
    loaded, seen, outcomes = _trials(workdir, reset=False)
    assert [o.status for o in outcomes] == ["ok"] * 3
    assert seen[0] == loaded
    history = [s["pgbench_history"] for s in seen]
    assert history[0] < history[1] < history[2]  # every earlier trial's rows are still there
    assert sum(seen[2]["n_dead_tup"].values()) > 0


def test_a_pair_runs_beside_a_twin_from_the_same_state_and_the_twin_goes(workdir: Path) -> None:
    """A config and the default on two sandboxes, slice by slice; the twin is removed."""
    spec = load_spec(ROOT / "knobs" / "postgres.yaml")
    system = PostgresSystem(spec, sandbox=Sandbox(root=workdir / "sandboxes"))
    agent = Agent(system, make_workload(load_workload(str(TINY_TPCB))), 4)
    phases: list[str] = []
    try:
        agent.start()
        assert agent.can_pair()
        before = set((workdir / "sandboxes").iterdir())
        config = {"shared_buffers": "64MB"}  # a restart on one side only
        first = agent.run_pair(config, {}, phases.append)
        second = agent.run_pair(config, {}, phases.append, swap=True)
        during = set((workdir / "sandboxes").iterdir())
    finally:
        agent.stop()
    for o in (first, second):
        assert o.status == "ok", o.error
        assert o.metrics["tps"] > 0 and o.metrics["reference.objective"] > 0
        assert o.metrics["slices"] == 2  # 4 s: two 2 s slices on each side, ABBA
        assert o.timings["reset_s"] > 0 and o.timings["settle_s"] > 0
    assert second.metrics["twin_runs_config"] == 1.0
    assert phases.count("starting a twin") == 1  # started once, kept between pairs
    assert len(during - before) == 1  # the twin's own sandbox
    assert list((workdir / "sandboxes").iterdir()) == []  # both sandboxes went at the stop

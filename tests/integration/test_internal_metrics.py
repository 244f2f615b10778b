"""Internal metrics on real PostgreSQL and a real pgbench: per trial, over the measured phase."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotune.agent import Agent
from autotune.spec import load_spec
from autotune.systems.postgres import PostgresSystem, Sandbox
from autotune.workloads import load_workload, make_workload
from tests.conftest import DATA, ROOT
from tests.integration.pgutil import run_cli

pytestmark = pytest.mark.pg

TINY_TPCB = str(DATA / "workloads" / "tiny-tpcb.yaml")  # 1 s warm-up, 2 clients, scale 1


def test_a_pgbench_trial_records_the_servers_and_the_hosts_counters(workdir: Path) -> None:
    spec = load_spec(ROOT / "knobs" / "postgres.yaml")
    system = PostgresSystem(spec, sandbox=Sandbox(root=workdir / "sandboxes"))
    agent = Agent(system, make_workload(load_workload(TINY_TPCB)), duration_s=2)
    try:
        agent.start()
        outcome = agent.run_trial({"work_mem": "8MB"})
    finally:
        agent.stop()
    assert outcome.status == "ok", outcome.error
    m = outcome.metrics
    transactions = m["transactions"]
    assert transactions > 50
    # The server's count covers the measured run only: not the warm-up's second of load
    # (which would add about half again), just pgbench's own transactions and a few more.
    assert 0.9 * transactions <= m["pg.database.xact_commit"] <= 1.3 * transactions + 50
    assert m["pg.database.xact_rollback"] == 0
    assert m["pg.tables.n_tup_upd"] >= 0.9 * 3 * transactions  # TPC-B: 3 updates a transaction
    assert m["pg.tables.n_live_tup"] >= 100_000  # a gauge: pgbench_accounts' rows at scale 1
    assert m["pg.statio.heap_blks_hit"] > 0
    assert m["pg.wal.wal_bytes"] > 0 and m["pg.wal.wal_records"] > 0
    assert "pg.bgwriter.buffers_alloc" in m
    assert m["host.cpu.user_s"] > 0
    assert m["host.ctxt"] > 0
    assert m["host.mem.available_bytes"] > 0
    assert all(not name.startswith("pg.") or name.count(".") == 2 for name in m)
    assert not {"pg.database.datid", "pg.database.numbackends", "pg.tables.relid"} & set(m)


def test_tune_stores_internal_metrics_with_each_trial(workdir: Path) -> None:
    run_cli(
        workdir,
        "tune", "--system", "postgres", "--workload", TINY_TPCB,
        "--trials", "1", "--duration", "1", "--experiment", "internals",
    )  # fmt: skip
    out = run_cli(workdir, "trials", "internals", "--format", "json").stdout
    (trial,) = json.loads(out)
    assert trial["status"] == "ok"
    metrics = trial["metrics"]
    assert metrics["pg.database.xact_commit"] >= 0.9 * metrics["transactions"] > 0
    assert metrics["pg.wal.wal_bytes"] > 0 and metrics["host.cpu.user_s"] > 0

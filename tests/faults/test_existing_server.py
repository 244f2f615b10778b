"""Tuning a server autotune did not start never leaves it down or changed.

The server here is a cluster started before autotune runs and reached only by
``--dsn``, as a DBA's server is. The spec is tests/data/poison.yaml, whose
shared_buffers can exceed the host's memory, so a config can keep the server
from starting again.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import psycopg2
import pytest
from psycopg2.extensions import make_dsn

from autotune.store import Store
from autotune.systems.postgres import Sandbox
from tests.conftest import DATA
from tests.integration.pgutil import run_cli

pytestmark = pytest.mark.pg

POISON = str(DATA / "poison.yaml")
TINY_TPCB = str(DATA / "workloads" / "tiny-tpcb.yaml")


def settings(dsn: str) -> tuple[str, str, str]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT current_setting('shared_buffers'), current_setting('work_mem'), "
                "pg_read_file('postgresql.auto.conf')"
            )
            row = cur.fetchone()
            assert row is not None
            return row[0], row[1], row[2]
    finally:
        conn.close()


def restart_command(server: Sandbox) -> str:
    pg_ctl = server.bindir / "pg_ctl"
    return shlex.join([
        "runuser", "-u", "postgres", "--", str(pg_ctl), "-D", str(server.data_dir),
        "-l", str(server.log_path), "-w", "-t", "60", "restart",
    ])  # fmt: skip


def test_without_data_dir_restart_knobs_are_left_out_and_the_server_is_untouched(
    sandbox: Sandbox, workdir: Path
) -> None:
    dsn = make_dsn(**sandbox.conn_params())
    # The DBA runs work_mem at 6MB today: the baseline measures that, not the spec's 4MB.
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ALTER SYSTEM SET work_mem = '6MB'")
        cur.execute("SELECT pg_reload_conf()")
    conn.close()
    before = settings(dsn)
    assert before[1] == "6MB"
    result = run_cli(
        workdir,
        "tune", "--system", POISON, "--workload", TINY_TPCB, "--dsn", dsn,
        "--restart-command", restart_command(sandbox), "--trials", "3", "--duration", "1",
        "--experiment", "no-data-dir",
    )  # fmt: skip
    assert "left out restart-class knobs (give --restart-command and --data-dir" in result.stdout
    assert "shared_buffers" in result.stdout.split("left out restart-class knobs")[1]
    trials = run_cli(workdir, "trials", "no-data-dir", "--format", "json").stdout
    assert '"shared_buffers"' not in trials  # never tried
    baseline = json.loads(trials)[0]
    assert baseline["baseline"] and baseline["config"]["work_mem"] == 6 * 1024
    assert "baseline: the configuration the target runs today" in result.stdout
    assert sandbox.running() and settings(dsn) == before
    # A later verify measures against the same reference, the spec's defaults beside it.
    checked = run_cli(
        workdir,
        "verify", "no-data-dir", "--dsn", dsn, "--rounds", "2", "--duration", "1",
        "--no-pgtune",
    )  # fmt: skip
    assert "default, best, spec defaults" in checked.stdout, checked.stdout
    assert "keep the current config" in checked.stdout or "verified gain" in checked.stdout
    store = Store(f"sqlite:///{workdir / 'store.db'}")
    try:
        (analysis,) = store.analyses(store.require_experiment("no-data-dir"), "verify")
    finally:
        store.close()
    arms = {a["label"]: a["config"] for a in analysis.result["arms"]}
    assert arms["default"]["work_mem"] == 6 * 1024 and arms["spec defaults"]["work_mem"] == 4096
    assert sandbox.running() and settings(dsn) == before


def test_with_data_dir_a_server_that_does_not_start_is_rolled_back(
    sandbox: Sandbox, workdir: Path
) -> None:
    dsn = make_dsn(**sandbox.conn_params())
    before = settings(dsn)
    result = run_cli(
        workdir,
        "tune", "--system", POISON, "--workload", TINY_TPCB, "--dsn", dsn,
        "--restart-command", restart_command(sandbox), "--data-dir", str(sandbox.data_dir),
        "--knobs", "shared_buffers", "--trials", "4", "--duration", "1", "--seed", "3",
        "--experiment", "poison", "--start-with", "none", timeout=400,
    )  # fmt: skip
    assert "FAILED" in result.stdout, result.stdout  # a poison config was tried...
    assert sandbox.running() and settings(dsn) == before  # ...and undone


def test_a_data_dir_that_is_not_the_servers_is_refused_before_any_change(
    sandbox: Sandbox, workdir: Path
) -> None:
    dsn = make_dsn(**sandbox.conn_params())
    before = settings(dsn)
    result = run_cli(
        workdir,
        "tune", "--system", POISON, "--workload", TINY_TPCB, "--dsn", dsn,
        "--restart-command", "true", "--data-dir", str(workdir), "--trials", "2",
        "--duration", "1", "--experiment", "wrong-dir", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"--data-dir {workdir} is not the server's data directory" in (
        result.stdout + result.stderr
    )
    assert settings(dsn) == before

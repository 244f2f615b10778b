"""`autotune best --format sql`, applied as printed with `psql -f` and the restart it
asks for, gives a real server exactly the best config, restart knobs included."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg2

from autotune.spec import load_spec
from autotune.systems.postgres import Sandbox, find_program
from tests.conftest import ROOT
from tests.integration.pgutil import run_cli
from tests.integration.test_tune_cli import TINY_TPCB

KNOBS = "shared_buffers,wal_buffers,work_mem,random_page_cost,checkpoint_completion_target"


def test_best_sql_applied_with_psql_and_a_restart_gives_exactly_the_config(
    workdir: Path, sandbox: Sandbox
) -> None:
    run_cli(
        workdir, "tune", "--system", "postgres", "--workload", TINY_TPCB, "--trials", "3",
        "--duration", "1", "--optimizer", "random", "--seed", "3", "--experiment", "pasted",
        "--knobs", KNOBS,
    )  # fmt: skip
    best = json.loads(run_cli(workdir, "best", "pasted", "--format", "json").stdout)
    sql = run_cli(workdir, "best", "pasted", "--format", "sql").stdout
    spec = load_spec(ROOT / "knobs" / "postgres.yaml")
    restart = [k for k in best["config"] if spec.knobs[k].apply == "restart"]
    assert restart, "the config must hold restart-class knobs for this test to mean anything"
    assert all(k in sql.splitlines()[-1] for k in restart)  # it says which need the restart
    script = workdir / "best.sql"
    script.write_text(sql)
    script.chmod(0o644)
    params = sandbox.conn_params()
    psql = [
        find_program("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", params["host"],
        "-p", params["port"], "-U", params["user"], "-d", params["dbname"], "-f", str(script),
    ]  # fmt: skip
    done = subprocess.run(psql, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    sandbox.restart()
    conn = psycopg2.connect(**params)
    try:
        with conn.cursor() as cur:
            for name, value in best["native"].items():
                knob = spec.knobs[name]
                # What the config files now say (the last line for a name wins), taken
                # without error, and what the server runs with.
                cur.execute(
                    "SELECT setting, applied, error FROM pg_file_settings WHERE name = %s "
                    "ORDER BY seqno DESC LIMIT 1",
                    (name,),
                )
                setting, applied, error = cur.fetchone()  # type: ignore[misc]
                assert applied and error is None, (name, setting, error)
                assert knob.validate(setting) == knob.validate(value), (name, setting, value)
                if value in knob.special:
                    continue  # -1 for wal_buffers: the server shows the size it derived
                cur.execute("SELECT current_setting(%s)", (name,))
                shown = cur.fetchone()[0]  # type: ignore[index]
                assert knob.validate(shown) == knob.validate(value), (name, shown, value)
    finally:
        conn.close()

"""The generic sql applier on a real PostgreSQL: a spec-only system, no Python for it."""

from __future__ import annotations

import psycopg2
import pytest
from psycopg2.extensions import make_dsn

from autotune.spec import parse_spec
from autotune.systems import ConfigFailed, SystemError_
from autotune.systems._registry import Target, make_system
from autotune.systems.postgres import Sandbox
from autotune.systems.sqlapplier import SqlSystem

pytestmark = pytest.mark.pg

SPEC = """
system: pg_by_sql
applier:
  kind: sql
  set: "ALTER SYSTEM SET {name} = {value}"
  reset: "ALTER SYSTEM RESET {name}"
  reload: "SELECT pg_reload_conf()"
  show: "SELECT current_setting({name_literal})"
knobs:
  work_mem: {type: integer, unit: kB, min: 64kB, max: 1GB, default: 4MB, apply: reload}
  commit_delay: {type: integer, min: 0, max: 500000, default: 0, apply: reload}
  jit: {type: bool, default: true, apply: reload}
"""


def setting(dsn: str, name: str) -> str:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting(%s)", (name,))
            row = cur.fetchone()
            assert row is not None
            return str(row[0])
    finally:
        conn.close()


def test_sql_applier_sets_reads_back_rolls_back_and_restores(sandbox: Sandbox) -> None:
    dsn = make_dsn(**sandbox.conn_params())
    spec = parse_spec(SPEC, "pg-by-sql.yaml")
    with pytest.raises(SystemError_, match="give --dsn"):
        make_system(spec, Target())
    system = make_system(spec, Target(dsn=dsn))
    assert isinstance(system, SqlSystem)
    system.start()
    before = {n: setting(dsn, n) for n in spec.knobs}
    report = system.apply({"work_mem": 8192, "jit": False})
    assert report.action == "reload" and report.not_applied == {}
    assert setting(dsn, "work_mem") == "8MB" and setting(dsn, "jit") == "off"
    system.mark_good()
    # The spec allows more than PostgreSQL does: the server refuses, the config is rolled back.
    with pytest.raises(ConfigFailed, match="refused"):
        system.apply({"commit_delay": 400000, "work_mem": 16384})
    assert setting(dsn, "work_mem") == "8MB" and setting(dsn, "commit_delay") == "0"
    system.restore()
    assert {n: setting(dsn, n) for n in spec.knobs} == before
    auto_conf = (sandbox.data_dir / "postgresql.auto.conf").read_text()
    assert "work_mem" not in auto_conf and "jit" not in auto_conf  # reset, not pinned
    system.stop()

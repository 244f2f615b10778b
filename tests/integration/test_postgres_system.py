"""PostgresSystem against a real server: apply, read back, roll back, restore."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

from autotune.spec import KnobValueError, load_spec
from autotune.systems import ConfigFailed, SystemError_
from autotune.systems.postgres import PostgresSystem, Sandbox
from tests.conftest import DATA, ROOT

pytestmark = pytest.mark.pg


def show(system: PostgresSystem, name: str) -> str:
    with system.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT current_setting(%s)", (name,))
        row = cur.fetchone()
        assert row is not None
        return str(row[0])


@pytest.fixture
def managed(workdir: Path) -> PostgresSystem:
    spec = load_spec(ROOT / "knobs" / "postgres.yaml")
    system = PostgresSystem(spec, sandbox=Sandbox(root=workdir / "sandboxes"))
    system.start()
    yield system
    system.stop()


def test_reload_and_restart_knobs_take_effect_and_are_read_back(managed: PostgresSystem) -> None:
    report = managed.apply({"work_mem": "16MB", "random_page_cost": 1.5, "jit": False})
    assert report.action == "reload"
    assert report.not_applied == {}
    assert show(managed, "work_mem") == "16MB"
    assert show(managed, "random_page_cost") == "1.5"
    assert show(managed, "jit") == "off"
    report = managed.apply({"shared_buffers": "256MB", "work_mem": "16MB"})
    assert report.action == "restart"
    assert report.restart_s > 0
    assert show(managed, "shared_buffers") == "256MB"
    # Nothing changed: nothing to do.
    assert managed.apply({"shared_buffers": "256MB"}).action == "online"


def test_sql_metacharacters_never_reach_the_server(managed: PostgresSystem) -> None:
    with managed.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE x (i int)")
    before = (managed.sandbox.data_dir / "postgresql.auto.conf").read_text()  # type: ignore[union-attr]
    evil = "'; DROP TABLE x; --"
    for knob in ("work_mem", "random_page_cost", "jit", "huge_pages"):
        with pytest.raises(KnobValueError):
            managed.apply({knob: evil})
    with pytest.raises(SystemError_):
        managed.apply({"work_mem; DROP TABLE x": "4MB"})
    with managed.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('x') IS NOT NULL")
        assert cur.fetchone() == (True,)
    after = (managed.sandbox.data_dir / "postgresql.auto.conf").read_text()  # type: ignore[union-attr]
    assert after == before


def test_poison_config_is_rolled_back_with_the_server_log(workdir: Path) -> None:
    spec = load_spec(DATA / "poison.yaml")
    system = PostgresSystem(spec, sandbox=Sandbox(root=workdir / "sandboxes"))
    system.start()
    try:
        system.apply({"shared_buffers": "256MB", "work_mem": "8MB"})
        system.mark_good()
        too_big = spec.knobs["shared_buffers"].hi  # 400% of this machine's memory
        with pytest.raises(ConfigFailed) as info:
            system.apply({"shared_buffers": too_big, "work_mem": "2MB"})
        assert "did not start" in str(info.value)
        assert "shared memory" in info.value.log_excerpt
        # The server is back, on the last good config.
        assert system.healthy()
        assert show(system, "shared_buffers") == "256MB"
        assert show(system, "work_mem") == "8MB"
        # And the next config applies normally.
        assert system.apply({"shared_buffers": "512MB", "work_mem": "8MB"}).not_applied == {}
        assert show(system, "shared_buffers") == "512MB"
    finally:
        system.stop()


def test_existing_server_is_restored_to_its_original_config(sandbox: Sandbox) -> None:
    # An "existing" server: it already has an ALTER SYSTEM setting of its own.
    conn = psycopg2.connect(**sandbox.conn_params())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ALTER SYSTEM SET work_mem = '8MB'")
        cur.execute("SELECT pg_reload_conf()")
    conn.close()
    auto_conf = sandbox.data_dir / "postgresql.auto.conf"
    original = auto_conf.read_text()
    params = sandbox.conn_params()
    dsn = f"host={params['host']} port={params['port']} user={params['user']} dbname=postgres"
    spec = load_spec(ROOT / "knobs" / "postgres.yaml")
    system = PostgresSystem(spec, dsn=dsn)
    assert not system.restartable()  # no restart command: restart knobs are off limits
    system.start()
    with pytest.raises(SystemError_, match="restart-command"):
        system.apply({"shared_buffers": "256MB"})
    system.apply({"work_mem": "32MB", "random_page_cost": 2.0})
    assert show(system, "work_mem") == "32MB"
    system.restore()
    assert show(system, "work_mem") == "8MB"
    assert show(system, "random_page_cost") == "4"
    assert "random_page_cost" not in auto_conf.read_text()
    assert "work_mem = '8MB'" in auto_conf.read_text()
    assert original.strip().splitlines()[-1] == auto_conf.read_text().strip().splitlines()[-1]
    system.stop()  # must not stop a server it does not own
    assert system.healthy()

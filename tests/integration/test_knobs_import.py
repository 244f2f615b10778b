"""``autotune knobs import postgres`` against real PostgreSQL: the spec matches pg_settings."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from autotune.spec import Unit, load_spec
from autotune.systems.postgres import Sandbox
from autotune.systems.postgres._import_rules import COLUMNS
from tests.integration.pgutil import postmasters_in, processes_under, run_cli

pytestmark = pytest.mark.pg


def pg_settings(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    conn = psycopg2.connect(**sandbox.conn_params())
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM pg_settings")  # noqa: S608
            return {r[0]: dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()}
    finally:
        conn.close()


def body(text: str) -> str:
    """The spec without its header comment, which names the date and the source."""
    return text[text.index("\nsystem:") :]


def test_import_from_a_managed_sandbox_and_a_dsn(workdir: Path, sandbox: Sandbox) -> None:
    managed = run_cli(workdir, "knobs", "import", "postgres", timeout=120)
    # The managed sandbox (created beside the fixture's) is gone before the command returns.
    assert list((workdir / "sandboxes").glob("autotune-pg-*")) == [sandbox.dir]
    assert postmasters_in(workdir) == [f"pid {_pid(sandbox)} ({sandbox.data_dir})"]
    assert not [p for p in processes_under(workdir) if str(sandbox.dir) not in p]
    assert "starting a managed PostgreSQL sandbox" in managed.stderr
    assert "tunable" in managed.stderr and "unsafe" in managed.stderr

    path = workdir / "my-postgres.yaml"
    path.write_text(managed.stdout)
    validated = run_cli(workdir, "knobs", "validate", str(path))
    assert f"{path}: ok (" in validated.stdout
    head = managed.stdout.split("\nsystem:", 1)[0]
    assert "server parameters, imported from pg_settings" in head
    assert "`autotune knobs import postgres`" in head and "managed sandbox" in head

    params = sandbox.conn_params()
    dsn = " ".join(f"{k}={v}" for k, v in params.items())
    from_dsn = run_cli(workdir, "knobs", "import", "postgres", "--dsn", dsn, timeout=120)
    assert "(--dsn)" in from_dsn.stdout.split("\nsystem:", 1)[0]
    assert body(from_dsn.stdout) == body(managed.stdout)  # the same server build, the same spec

    spec = load_spec(path)
    settings = pg_settings(sandbox)
    version = settings["server_version"]["boot_val"]
    assert head.startswith(f"# PostgreSQL {version} server parameters")

    # Every setting that can be a knob is one, with pg_settings' apply class, unit and limits.
    importable = {
        n: s for n, s in settings.items() if s["vartype"] != "string" and s["context"] != "internal"
    }
    assert set(spec.knobs) == set(importable)
    for name, s in importable.items():
        knob = spec.knobs[name]
        expected = "restart" if s["context"] == "postmaster" else "reload"
        assert knob.apply == expected, name
        assert knob.type == s["vartype"], name
        if knob.type == "enum":
            assert list(knob.values) == list(s["enumvals"]), name
            assert knob.default == s["boot_val"], name
        elif knob.type == "bool":
            assert knob.default is (s["boot_val"] == "on"), name
        else:
            assert knob.unit == Unit.parse(s["unit"]), name
            assert math.isclose(knob.lo, float(s["min_val"])), name  # type: ignore[arg-type]
            assert math.isclose(knob.hi, float(s["max_val"])), name  # type: ignore[arg-type]
            assert math.isclose(knob.default, float(s["boot_val"])), name  # type: ignore[arg-type]
    postmaster = [n for n, s in importable.items() if s["context"] == "postmaster"]
    assert len(postmaster) > 20
    assert all(spec.knobs[n].apply == "restart" for n in postmaster)

    assert spec.knobs["fsync"].safety == "unsafe"
    assert spec.knobs["synchronous_commit"].safety == "unsafe"
    assert spec.knobs["full_page_writes"].safety == "unsafe"
    assert spec.knobs["wal_sync_method"].safety == "safe"
    assert not spec.knobs["log_min_duration_statement"].tunable
    assert not spec.knobs["port"].tunable
    sb = spec.knobs["shared_buffers"]
    assert (sb.unit.text, sb.lo, sb.hi, sb.default, sb.apply) == (
        "8kB", 16, 1073741823, 16384, "restart",
    )  # fmt: skip
    assert sb.format(sb.default) == "128MB"
    wm = spec.knobs["work_mem"]
    assert (wm.unit.text, wm.lo, wm.hi, wm.default, wm.apply) == (
        "kB", 64, 2147483647, 4096, "reload",
    )  # fmt: skip
    ct = spec.knobs["checkpoint_timeout"]
    assert (ct.unit.text, ct.lo, ct.hi, ct.format(ct.default)) == ("s", 30, 86400, "5min")
    assert spec.knobs["max_wal_size"].unit.text == "MB"
    assert spec.knobs["random_page_cost"].hi == 1.79769e308
    assert spec.knobs["wal_buffers"].special == (-1,)
    assert spec.knobs["max_connections"].apply == "restart"


def _pid(sandbox: Sandbox) -> int:
    return int((sandbox.data_dir / "postmaster.pid").read_text().splitlines()[0])

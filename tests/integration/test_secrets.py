"""A DSN's password appears nowhere autotune writes: console, store, export."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg2.extensions import make_dsn

from autotune.systems.postgres import Sandbox
from tests.conftest import DATA
from tests.integration.pgutil import run_cli

pytestmark = pytest.mark.pg

# Spaces, quotes and an @: a regex that stops at the first space leaks the rest.
PASSWORD = "se cret'@\"pw"
PIECES = (PASSWORD, "cret'@", '"pw', "se cret")


def test_a_dsn_password_is_never_printed_stored_or_exported(
    sandbox: Sandbox, workdir: Path
) -> None:
    # The sandbox trusts local connections, so the password is carried, not checked:
    # what is tested is where autotune writes it.
    dsn = make_dsn(**sandbox.conn_params(), password=PASSWORD)
    tuned = run_cli(
        workdir,
        "tune", "--system", "postgres", "--workload", str(DATA / "workloads" / "tiny-tpcb.yaml"),
        "--dsn", dsn, "--trials", "2", "--duration", "1", "--experiment", "secret",
        "--knobs", "work_mem,random_page_cost",
    )  # fmt: skip
    assert "password=***" in tuned.stdout
    export = workdir / "secret.json"
    run_cli(workdir, "export", "secret", "--out", str(export))
    shown = run_cli(workdir, "trials", "secret", "--format", "json")
    written = {
        "console": (tuned.stdout + tuned.stderr).encode(),
        "store": b"".join(p.read_bytes() for p in sorted(workdir.glob("store.db*"))),
        "export": export.read_bytes(),
        "trials": shown.stdout.encode(),
    }
    for where, data in written.items():
        for piece in PIECES:
            assert piece.encode() not in data, f"{piece!r} is in the {where}"
    assert b"password=***" in written["store"] and b"password=***" in written["export"]

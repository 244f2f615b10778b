"""Integration fixtures: real PostgreSQL clusters and the real CLI.

Every test gets its own sandbox root (reachable by the postgres OS user when
we run as root) and checks afterwards that no cluster or postgres process
was left behind.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.systems.postgres import Sandbox, find_bindir
from autotune.systems.postgres._sandbox import _stop_postmaster
from tests.integration.pgutil import postmasters_in, processes_under

pytestmark = pytest.mark.pg


def _require_postgres() -> None:
    try:
        find_bindir()
    except Exception as exc:  # a missing server must fail loudly, not skip
        pytest.fail(f"integration tests need PostgreSQL server binaries: {exc}")
    if shutil.which("pgbench") is None and not (find_bindir() / "pgbench").exists():
        pytest.fail("integration tests need pgbench (postgresql-client-15)")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A sandbox root the postgres user can reach; asserts nothing is left in it."""
    _require_postgres()
    root = Path(tempfile.mkdtemp(prefix="at-test-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
        deadline = time.monotonic() + 10
        while (postmasters_in(root) or processes_under(root)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not postmasters_in(root), "postgres left running"
        assert not processes_under(root), f"processes left: {processes_under(root)}"
        assert not list(root.glob("**/autotune-pg-*")), "sandbox directory left behind"
    finally:
        for data in root.glob("**/autotune-pg-*/data"):
            _stop_postmaster(data)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def sandbox(workdir: Path) -> Iterator[Sandbox]:
    box = Sandbox(root=workdir / "sandboxes")
    box.create()
    box.start()
    try:
        yield box
    finally:
        box.destroy()

"""The managed sandbox: a real private cluster that leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg2
import pytest

from autotune.systems.postgres import Sandbox, sweep_stale
from tests.integration.pgutil import postmasters_in

pytestmark = pytest.mark.pg


def _owner_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_sandbox_runs_private_cluster_and_removes_it(workdir: Path) -> None:
    box = Sandbox(root=workdir / "sandboxes")
    box.create()
    box.start()
    try:
        assert box.dir is not None and box.dir.parent == workdir / "sandboxes"
        with psycopg2.connect(**box.conn_params()) as conn, conn.cursor() as cur:
            cur.execute("SHOW unix_socket_directories")
            assert cur.fetchone() == (str(box.socket_dir),)
            cur.execute("SHOW port")
            assert cur.fetchone() == (str(box.port),)
        pid = int((box.data_dir / "postmaster.pid").read_text().splitlines()[0])
        if os.geteuid() == 0:
            import pwd

            assert _owner_uid(pid) == pwd.getpwnam("postgres").pw_uid
    finally:
        box.destroy()
    assert not postmasters_in(workdir)
    assert not list((workdir / "sandboxes").glob("autotune-pg-*"))
    box.destroy()  # a second call is harmless


def test_stale_sandbox_of_a_killed_process_is_swept(workdir: Path) -> None:
    root = workdir / "sandboxes"
    box = Sandbox(root=root)
    box.create()
    box.start()
    assert box.dir is not None
    stale_dir = box.dir
    # Pretend the owner was killed -9: its pid file names a process that is gone.
    dead = subprocess.Popen(["true"])
    dead.wait()
    (stale_dir / "owner.pid").write_text(str(dead.pid))
    removed = sweep_stale(root)
    assert removed == [stale_dir]
    assert not stale_dir.exists()
    assert not postmasters_in(workdir)


def test_start_failure_reports_the_server_log(workdir: Path) -> None:
    box = Sandbox(root=workdir / "sandboxes")
    box.create()
    try:
        with open(box.data_dir / "postgresql.auto.conf", "a") as f:
            f.write("shared_buffers = '1000000GB'\n")
        from autotune.systems import SystemError_

        with pytest.raises(SystemError_) as info:
            box.start(timeout_s=20)
        assert "shared_buffers" in info.value.log_excerpt or "memory" in info.value.log_excerpt
    finally:
        box.destroy()

"""Temporary directories of a killed autotune process are swept by the next one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from autotune._tmp import OWNER, UNOWNED_AGE_S, OwnedTempDir, sweep


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_the_leftovers_of_dead_owners_are_swept(tmp_path: Path) -> None:
    def made(name: str, owner: int | None, age_s: float = 0) -> Path:
        path = tmp_path / name
        path.mkdir()
        if owner is not None:
            (path / OWNER).write_text(str(owner))
        if age_s:
            then = path.stat().st_mtime - age_s
            os.utime(path, (then, then))
        return path

    killed = made("autotune-pgbench-killed", dead_pid())
    running = made("autotune-workload-running", os.getpid())
    stale = made("autotune-cmd-unowned-old", None, UNOWNED_AGE_S + 60)
    fresh = made("autotune-verify-unowned-new", None)
    other = made("someone-elses-dir", dead_pid())
    smac = made("autotune-smac-killed", dead_pid())  # a benchmark worker's, OOM-killed
    assert sorted(sweep(tmp_path)) == sorted([killed, stale, smac])
    assert not killed.exists() and not stale.exists()
    assert running.exists() and fresh.exists() and other.exists()


def test_an_owned_dir_carries_its_pid_and_goes_away_after_use() -> None:
    with OwnedTempDir("autotune-workload-") as name:
        assert (Path(name) / OWNER).read_text() == str(os.getpid())
    assert not Path(name).exists()

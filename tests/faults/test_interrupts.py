"""`autotune tune` interrupted: SIGINT or SIGTERM mid-trial, a second Ctrl-C during the
cleanup, and kill -9, whose leftovers the next start sweeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotune.store import Store
from tests.integration.pgutil import cli_env, postmasters_in
from tests.integration.test_tune_cli import OLTP, TINY_TPCB, _wait_for


def start_tune(workdir: Path, name: str, *extra: str) -> subprocess.Popen[str]:
    env = {**cli_env(workdir), "TMPDIR": str(workdir / "tmp")}
    (workdir / "tmp").mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable, "-m", "autotune", "tune", "--system", "postgres",
            "--workload", TINY_TPCB, "--trials", "20", "--duration", "20",
            "--experiment", name, *OLTP, *extra,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir, env=env,
        start_new_session=True,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_trial_cleans_up(workdir: Path, sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "autotune", "tune", "--system", "postgres",
            "--workload", TINY_TPCB, "--trials", "20", "--duration", "20",
            "--experiment", "interrupted", *OLTP,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=workdir,
        env=cli_env(workdir),
        start_new_session=True,
        # As `autotune tune … &` from a script starts it: with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    try:
        _wait_for(proc, "setup done", timeout=120)
        assert list(workdir.glob("sandboxes/autotune-pg-*")), "the sandbox should exist now"
        time.sleep(3)  # inside the baseline's pgbench run
        # Like Ctrl-C in a terminal: the whole process group (autotune and pgbench) gets it.
        os.killpg(proc.pid, sig)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert not postmasters_in(workdir)
    assert not list(workdir.glob("sandboxes/autotune-pg-*"))
    store = Store(f"sqlite:///{workdir / 'store.db'}")
    experiment = store.require_experiment("interrupted")
    # The unfinished trial was handed back, not half-recorded: a resume runs it first.
    assert store.trials(experiment, finished_only=True) == []
    assert [t.status for t in store.trials(experiment)] == ["pending"]
    store.close()


@pytest.mark.parametrize("moment", ["setup", "measuring"])
def test_a_second_ctrl_c_during_cleanup_leaves_nothing_behind(workdir: Path, moment: str) -> None:
    proc = start_tune(workdir, f"twice-{moment}")
    try:
        if moment == "setup":
            _wait_for(proc, "starting experiment", timeout=120)
            time.sleep(1)  # initdb, the data load or the pristine copy under way
        else:
            _wait_for(proc, "setup done", timeout=120)
            time.sleep(3)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # impatient: again, while it cleans up
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert not postmasters_in(workdir)
    assert not list(workdir.glob("sandboxes/autotune-pg-*")), "half a sandbox left"
    assert not list((workdir / "tmp").glob("autotune-*"))


def test_kill_9_leftovers_are_swept_by_the_next_start(workdir: Path) -> None:
    proc = start_tune(workdir, "killed")
    try:
        _wait_for(proc, "setup done", timeout=120)
        time.sleep(3)  # inside a pgbench run: its log directory exists
        os.killpg(proc.pid, signal.SIGKILL)  # no cleanup at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = list(workdir.glob("sandboxes/autotune-pg-*"))
    assert left and postmasters_in(workdir), "the killed session's server is still running"
    assert list((workdir / "tmp").glob("autotune-*")), "and its temporary directories"
    # The next session in this directory, a short one, sweeps them when it starts.
    env_tmp = {"TMPDIR": str(workdir / "tmp")}
    result = subprocess.run(
        [
            sys.executable, "-m", "autotune", "tune", "--system", "postgres",
            "--workload", TINY_TPCB, "--trials", "1", "--duration", "1",
            "--experiment", "after", *OLTP,
        ],
        capture_output=True, text=True, cwd=workdir, env={**cli_env(workdir), **env_tmp},
        timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any(p.exists() for p in left)
    assert not postmasters_in(workdir)
    assert not list((workdir / "tmp").glob("autotune-*"))
    store = Store(f"sqlite:///{workdir / 'store.db'}")
    try:  # the killed trial is leased, not half-recorded; a resume would run it again
        killed = store.require_experiment("killed")
        assert store.trials(killed, finished_only=True) == []
    finally:
        store.close()

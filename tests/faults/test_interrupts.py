"""`autotune tune` interrupted: SIGINT or SIGTERM mid-trial, a second Ctrl-C during the
cleanup, and kill -9, whose leftovers the next start sweeps."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotune.store import Store
from tests.integration.pgutil import cli_env, postmasters_in
from tests.integration.test_tune_cli import OLTP, TINY_TPCB, _wait_for


def start_tune(
    workdir: Path, name: str, *extra: str, trials: int = 20, duration: float = 20
) -> subprocess.Popen[str]:
    env = {**cli_env(workdir), "TMPDIR": str(workdir / "tmp")}
    (workdir / "tmp").mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable, "-m", "autotune", "tune", "--system", "postgres",
            "--workload", TINY_TPCB, "--trials", str(trials), "--duration", str(duration),
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


# Each phase of a session, by the line that starts it: initdb, the data load, a trial's
# apply and restart (right after the previous trial's line), the final verification.
PHASES = {
    "initdb": ("starting system", 0.5),
    "load": ("loading data", 0.3),
    "apply": ("trial   2  ", 0.0),
    "verify": ("search done", 1.0),
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_ctrl_c_in_each_phase_loses_nothing_and_leaves_nothing(workdir: Path, phase: str) -> None:
    line, wait_s = PHASES[phase]
    # Ten trials: from ten up the session ends with a paired verification.
    proc = start_tune(workdir, f"int-{phase}", trials=10, duration=1)
    try:
        seen = _wait_for(proc, line, timeout=240)
        time.sleep(wait_s)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = seen + out
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert not postmasters_in(workdir)
    assert not list(workdir.glob("sandboxes/autotune-pg-*")), "sandbox left"
    assert not list((workdir / "tmp").glob("autotune-*")), "temporary directories left"
    store = Store(f"sqlite:///{workdir / 'store.db'}")
    try:
        trials = store.trials(store.require_experiment(f"int-{phase}"))
    finally:
        store.close()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), "a trial stored twice"
    # Every trial the console reported finished is stored finished (nothing lost), and
    # none is left leased or half-recorded: an unfinished one is handed back, pending.
    reported = {int(n) for n in re.findall(r"^trial +(\d+)  ok", out, flags=re.M)}
    assert reported <= {t.number for t in trials if t.status == "ok"}, out
    assert all(t.status in ("ok", "failed", "pending") for t in trials), trials
    if phase == "verify":
        assert len(reported) == 10 and any(t.phase == "verify" for t in trials), out


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

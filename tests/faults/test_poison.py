"""Poison configs against a managed sandbox: a config that stops the server fails its
trial and the session goes on on the rolled-back server; defaults that cannot run end
the session with one clear line and nothing else tried. (The existing-server case is
in test_existing_server.py.)"""

from __future__ import annotations

from pathlib import Path

import yaml

from autotune.spec import Machine
from autotune.store import Store
from tests.conftest import DATA
from tests.integration.pgutil import postmasters_in, run_cli
from tests.integration.test_tune_cli import TINY_TPCB, trials_json


def test_poison_config_fails_the_trial_and_the_session_goes_on(workdir: Path) -> None:
    result = run_cli(
        workdir, "tune", "--system", str(DATA / "poison.yaml"), "--workload", TINY_TPCB,
        "--trials", "6", "--duration", "1", "--optimizer", "random", "--seed", "1",
        "--experiment", "poison", "--start-with", "none",
    )  # fmt: skip
    trials = trials_json(workdir, "poison")
    assert sorted(t["number"] for t in trials) == [1, 2, 3, 4, 5, 6]  # type: ignore[type-var]
    failed = [t for t in trials if t["status"] == "failed"]
    assert failed, "seed 1 samples shared_buffers above physical memory"
    for trial in failed:
        assert "did not start" in trial["error"]  # type: ignore[operator]
        assert "shared memory" in trial["log_excerpt"]  # type: ignore[operator]
    first_failure = failed[0]["number"]
    assert any(t["status"] == "ok" and t["number"] > first_failure for t in trials), (  # type: ignore[operator]
        "a good config after a failure must run on the rolled-back server"
    )
    assert "FAILED" in result.stdout
    assert not postmasters_in(workdir)


def test_defaults_that_cannot_run_end_the_session_with_one_clear_line(workdir: Path) -> None:
    spec = yaml.safe_load((DATA / "poison.yaml").read_text())
    # Three times this host's memory: the server cannot start on the spec's defaults.
    too_big = 3 * Machine.local().memory_bytes // 2**30
    spec["knobs"]["shared_buffers"]["default"] = f"{too_big}GB"
    path = workdir / "poison-default.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = run_cli(
        workdir, "tune", "--system", str(path), "--workload", TINY_TPCB,
        "--trials", "6", "--duration", "1", "--experiment", "bad-default", check=False,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out
    assert out.count("error:") == 1, out
    error = out[out.index("error:") :]
    assert error.startswith("error: the spec's defaults (the baseline) failed twice"), out
    assert "did not start" in error and str(path) in error, out
    store = Store(f"sqlite:///{workdir / 'store.db'}")
    try:
        trials = store.trials(store.require_experiment("bad-default"))
    finally:
        store.close()
    # The baseline twice, both failed, and nothing else tried against it.
    assert [(t.is_baseline, t.status) for t in trials] == [(True, "failed")] * 2
    assert not postmasters_in(workdir)

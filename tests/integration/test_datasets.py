"""Loaded data kept between sessions: the first session of a `cache: true` workload
loads and keeps it, the second copies it in instead of loading, and `autotune
datasets` lists and removes it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import DATA
from tests.integration.pgutil import postmasters_in, run_cli
from tests.integration.test_tune_cli import OLTP, trials_json


def test_a_second_session_copies_the_kept_data_instead_of_loading(workdir: Path) -> None:
    workload = workdir / "cached-tpcb.yaml"
    text = (DATA / "workloads" / "tiny-tpcb.yaml").read_text()
    workload.write_text(text.replace("name: tiny-tpcb", "name: cached-tpcb") + "cache: true\n")
    tune = ["tune", "--system", "postgres", "--workload", str(workload), "--trials", "2",
            "--duration", "1", *OLTP]  # fmt: skip

    first = run_cli(workdir, *tune, "--experiment", "first").stdout
    assert "loading data" in first
    assert "keeping the loaded data in the dataset cache (pgbench-scale1-resettable)" in first
    kept = json.loads(run_cli(workdir, "datasets", "list", "--format", "json").stdout)
    assert [d["dataset"] for d in kept] == ["pgbench-scale1-resettable-pg15"]
    assert kept[0]["size"] > 10 * 2**20  # a whole data directory, not a stub
    saved = workdir / "datasets" / "pgbench-scale1-resettable-pg15"
    assert not (saved / "postmaster.pid").exists()

    second = run_cli(workdir, *tune, "--experiment", "second").stdout
    assert "data copied from the dataset cache in " in second, second
    assert "loading data" not in second
    # The copied data is the loaded data: every trial ran, and reset works from it.
    for name in ("first", "second"):
        trials = trials_json(workdir, name)
        assert [t["status"] for t in trials] == ["ok", "ok"], trials
        assert all("reset_s" in t["timings"] for t in trials)  # type: ignore[operator]
    assert not postmasters_in(workdir)

    removed = run_cli(workdir, "datasets", "rm", "pgbench-scale1-resettable-pg15").stdout
    assert removed.startswith("removed pgbench-scale1-resettable-pg15 (")
    assert not saved.exists()
    assert json.loads(run_cli(workdir, "datasets", "list", "-f", "json").stdout) == []
    bad = run_cli(workdir, "datasets", "rm", "nope", check=False)
    assert bad.returncode == 2 and "no dataset 'nope'" in bad.stderr

"""``autotune verify`` end to end: a real tuning run, then its best measured interleaved
against the default and pgtune on a fresh sandbox."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from autotune.store import Store
from tests.conftest import DATA
from tests.integration.pgutil import run_cli

pytestmark = pytest.mark.pg

TINY_TPCB = str(DATA / "workloads" / "tiny-tpcb.yaml")


def postgres_under(root: Path) -> list[str]:
    """``postgres -D`` processes (postmasters) whose data directory is under ``root``."""
    found = subprocess.run(
        ["pgrep", "-a", "-f", f"postgres -D {root}"], capture_output=True, text=True, check=False
    )
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def test_verify_measures_default_best_and_pgtune_interleaved(workdir: Path) -> None:
    store_url = f"sqlite:///{workdir / 'verify.db'}"
    run_cli(
        workdir,
        "tune", "--system", "postgres", "--workload", TINY_TPCB, "--trials", "3",
        "--optimizer", "random", "--duration", "1", "--experiment", "v",
        "--knobs", "shared_buffers,work_mem,random_page_cost", "--store", store_url,
    )  # fmt: skip
    assert postgres_under(workdir) == []

    result = run_cli(
        workdir, "verify", "v", "--repeats", "2", "--duration", "1", "--store", store_url
    )
    out = result.stdout
    assert "verifying v: default, best, pgtune; 2 rounds in rotating order on managed sandbox" in (
        out
    )
    assert "ratio vs default" in out and "95% CI" in out
    rows = {}
    for label in ("default", "best", "pgtune"):
        match = re.search(rf"^│ {label} +│ +2 │ +([\d.]+) │ +(\S+) +│", out, re.M)
        assert match, f"no row for {label}:\n{out}"
        rows[label] = (float(match[1]), match[2])
    assert all(median > 0 for median, _ in rows.values())
    assert rows["default"][1] == "1"
    assert re.fullmatch(r"\d+\.\d{3}", rows["best"][1]) and re.fullmatch(
        r"\d+\.\d{3}", rows["pgtune"][1]
    )
    assert re.search(r"^best vs pgtune: ratio \d+\.\d{3}, 95% CI ", out, re.M), out
    # Rounds ran in rotating order: round 2 starts with the second arm.
    measured = re.findall(r"^  round (\d) (default|best|pgtune): ", out, re.M)
    assert measured == [
        ("1", "default"), ("1", "best"), ("1", "pgtune"),
        ("2", "best"), ("2", "pgtune"), ("2", "default"),
    ]  # fmt: skip

    store = Store(store_url)
    try:
        (analysis,) = store.analyses(store.require_experiment("v"), "verify")
    finally:
        store.close()
    data = analysis.result
    assert len(data["runs"]) == 6
    assert [a["label"] for a in data["arms"]] == ["default", "best", "pgtune"]
    assert all(r["status"] == "ok" and r["objective"] > 0 for r in data["runs"])
    assert data["rounds"] == 2 and data["duration_s"] == 1.0 and data["settle_runs"] == 1
    by_label = {s["label"]: s for s in data["summary"]}
    assert by_label["default"]["median"] == pytest.approx(rows["default"][0], rel=1e-5)
    assert by_label["best"]["ratio"] == pytest.approx(float(rows["best"][1]), abs=1e-3)
    assert data["versus_pgtune"]["a"] == "best" and data["versus_pgtune"]["b"] == "pgtune"
    assert postgres_under(workdir) == []

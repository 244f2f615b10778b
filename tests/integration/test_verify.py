"""``autotune verify`` end to end: a real tuning run, then its best measured interleaved
against the default (on a twin sandbox) and pgtune, in rotating rounds."""

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


def test_verify_measures_best_and_pgtune_beside_the_default_on_a_twin(workdir: Path) -> None:
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
    assert (
        "verifying v: best, pgtune, each beside the default on a twin sandbox; 2 rounds in "
        "rotating order on managed sandbox"
    ) in out
    assert "× default" in out and "95% CI" in out
    rows = {}
    for label in ("default", "best", "pgtune"):
        match = re.search(rf"^  {label}(?: ◀ best)? +(\d+) +([\d.]+) +(\S+)", out, re.M)
        assert match, f"no row for {label}:\n{out}"
        rows[label] = (int(match[1]), float(match[2]), match[3])
    # The default ran beside each of the 2 × 2 other runs, on the twin.
    assert rows["default"][0] == 4 and rows["best"][0] == 2 and rows["pgtune"][0] == 2
    assert all(median > 0 for _, median, _ in rows.values())
    assert rows["default"][2] == "1"
    assert re.fullmatch(r"\d+\.\d{3}", rows["best"][2]) and re.fullmatch(
        r"\d+\.\d{3}", rows["pgtune"][2]
    )
    assert re.search(r"^best vs pgtune: ratio \d+\.\d{3}, 95% CI ", out, re.M), out
    assert re.search(r"^verdict: (verified gain|no verified gain: keep the default)", out, re.M)
    # Rounds ran in rotating order: round 2 starts with the second arm.
    measured = re.findall(r"^  round (\d) (best|pgtune): [\d.]+ beside default [\d.]+$", out, re.M)
    assert measured == [("1", "best"), ("1", "pgtune"), ("2", "pgtune"), ("2", "best")], out

    store = Store(store_url)
    try:
        (analysis,) = store.analyses(store.require_experiment("v"), "verify")
    finally:
        store.close()
    data = analysis.result
    assert [a["label"] for a in data["arms"]] == ["default", "best", "pgtune"]
    assert len(data["runs"]) == 4 and data["policy"]["twin"] is True
    assert all(r["error"] is None and r["value"] > 0 and r["reference"] > 0 for r in data["runs"])
    assert data["rounds"] == 2 and data["duration_s"] == 1.0
    by_label = {a["label"]: a for a in data["verification"]["arms"]}
    assert by_label["default"]["median"] == pytest.approx(rows["default"][1], rel=1e-5)
    assert by_label["best"]["ratio"] == pytest.approx(float(rows["best"][2]), abs=1e-3)
    # The best's ratio is the geometric mean of each run's ratio to its own default.
    best_runs = [r for r in data["runs"] if r["arm"] == "best"]
    ratios = [r["value"] / r["reference"] for r in best_runs]
    assert by_label["best"]["ratio"] == pytest.approx((ratios[0] * ratios[1]) ** 0.5, rel=1e-9)
    assert data["versus_pgtune"]["a"] == "best" and data["versus_pgtune"]["b"] == "pgtune"
    assert postgres_under(workdir) == []

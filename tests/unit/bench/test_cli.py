"""`autotune bench optimizers` and `autotune bench latency` end to end."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autotune.bench.latency import (
    LatencyResult,
    latency_markdown,
    latency_space,
    measure,
    run_child,
)
from autotune.bench.runner import CSV_COLUMNS
from autotune.cli import app
from tests.conftest import INSTALL_DEV, unavailable

runner = CliRunner()


def test_bench_optimizers_writes_the_csv_and_the_table(tmp_path: Path) -> None:
    if importlib.util.find_spec("optuna") is None:
        unavailable(f"the benchmark's optuna-tpe competitor needs optuna: {INSTALL_DEV}")
    out = tmp_path / "tmp" / "x.csv"
    args = ["bench", "optimizers", "--budget", "5", "--seeds", "2", "--problems", "branin"]
    args += ["--optimizers", "random,gp,optuna-tpe", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    keys = [(r["problem"], r["optimizer"], r["seed"], r["budget"]) for r in rows]
    assert keys == [
        ("branin", o, s, "5") for o in ("gp", "optuna-tpe", "random") for s in ("0", "1")
    ]
    for row in rows:
        assert row["evaluations"] == "5" and row["error"] == ""
        assert float(row["simple_regret"]) >= 0
    table = out.with_suffix(".md").read_text()
    assert "### branin, budget 5" in table and "`optuna-tpe`" in table
    assert "**Budget 5** (1 counted problems)" in table and "| `optuna-tpe` | " in table
    assert "| branin | " in table and " | – | yes |" in table  # synthetic: no fit, counted

    # Same arguments, one process: the same CSV apart from wall time.
    again = tmp_path / "again.csv"
    args[-1] = str(again)
    assert runner.invoke(app, [*args, "--jobs", "1"]).exit_code == 0

    def strip(path: Path) -> list[list[str]]:
        with path.open() as f:
            return [row[:-2] + row[-1:] for row in csv.reader(f)]  # drop wall_s

    assert strip(out) == strip(again)


def test_bench_optimizers_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    checkpoint = tmp_path / "x.partial.csv"
    args = ["bench", "optimizers", "--budget", "4", "--budget", "6", "--problems", "branin"]
    args += ["--optimizers", "random,lhs", "--jobs", "1", "--out", str(out)]
    full = runner.invoke(app, [*args, "--seeds", "3"])
    assert full.exit_code == 0, full.output
    assert not checkpoint.exists()  # every seed finished
    reference = out.read_text()

    # An interrupted grid: five of the six runs made it into the checkpoint.
    lines = reference.splitlines(keepends=True)
    kept = [line for line in lines[1:] if not line.startswith("branin,random,2,")]
    assert len(kept) == 10  # five runs, two budgets each
    checkpoint.write_text(lines[0] + "".join(kept))
    resumed = runner.invoke(app, [*args, "--seeds", "3", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "[1/1] branin random seed 2" in resumed.output  # only the missing run

    def strip(text: str) -> list[list[str]]:
        return [row[:-2] + row[-1:] for row in csv.reader(text.splitlines())]

    assert strip(out.read_text()) == strip(reference)
    assert not checkpoint.exists()

    checkpoint.write_text("not,a\ncheckpoint,file\n")
    bad = runner.invoke(app, [*args, "--seeds", "3", "--resume"])
    assert bad.exit_code == 2 and "x.partial.csv" in bad.output


def test_bench_report_merges_grids_run_on_different_seeds(tmp_path: Path) -> None:
    """Cheap optimisers on more seeds than slow ones: one CSV and one table, each
    optimiser with its own seeds; a run in both sources is refused, naming it."""
    common = ["bench", "optimizers", "--budget", "4", "--problems", "branin", "--jobs", "1"]
    fast, slow = tmp_path / "fast.csv", tmp_path / "slow.csv"
    ran = runner.invoke(
        app, [*common, "--optimizers", "random", "--seeds", "3", "--out", str(fast)]
    )
    assert ran.exit_code == 0, ran.output
    ran = runner.invoke(app, [*common, "--optimizers", "lhs", "--seeds", "1", "--out", str(slow)])
    assert ran.exit_code == 0, ran.output

    merged = tmp_path / "all.csv"
    args = ["bench", "report", str(fast), str(slow), "--out", str(merged)]
    result = runner.invoke(app, [*args, "--note", "Two grids."])
    assert result.exit_code == 0, result.output
    with merged.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["optimizer"], r["seed"]) for r in rows] == [
        ("lhs", "0"),
        ("random", "0"),
        ("random", "1"),
        ("random", "2"),
    ]
    table = merged.with_suffix(".md").read_text()
    assert "`lhs` 0 (1); `random` 0–2 (3)" in table and "Two grids." in table
    runs = dict(re.findall(r"^\| `(\w+)`(?: \(best\))? \| (\d+) \| \d", table, re.MULTILINE))
    assert runs == {"lhs": "1", "random": "3"}

    again = runner.invoke(app, ["bench", "report", str(fast), str(fast), "--out", str(merged)])
    assert again.exit_code == 2
    assert f"{fast}: branin random seed 0 budget 4 is also in {fast}" in again.output
    assert len(merged.read_text().splitlines()) == 5  # the earlier merge is untouched
    missing = runner.invoke(app, ["bench", "report", str(tmp_path / "no.csv")])
    assert missing.exit_code == 2 and "no.csv: no such file" in missing.output


def test_bench_optimizers_refuses_unknown_names(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["bench", "optimizers", "--problems", "nope", "--out", str(tmp_path / "x.csv")]
    )
    assert result.exit_code == 2 and "unknown problem" in result.output
    result = runner.invoke(
        app, ["bench", "optimizers", "--optimizers", "nope", "--out", str(tmp_path / "x.csv")]
    )
    assert result.exit_code == 2 and "nope" in result.output


def test_latency_measure_and_report() -> None:
    assert len(latency_space()) == 20
    row = measure("random", n=30, repeats=3)
    assert row["n"] == 30 and len(row["ask_s"]) == 3 and row["peak_rss_mb"] > 0
    text = latency_markdown(LatencyResult("random", [row, {"n": 100, "error": "timed out"}]))
    assert "| 30 |" in text and "timed out" in text and "Peak memory at 30" in text
    json.dumps(row)  # what the child prints


def _row(n: int, times: list[float], rss: float = 100.0) -> dict[str, object]:
    return {"n": n, "ask_s": times, "tell_s": 0.1, "first_ask_s": 1.0, "peak_rss_mb": rss}


def test_latency_report_takes_medians_over_rounds() -> None:
    # Three rounds at 100 observations; numpy's p95 of 20 times interpolates
    # between the two slowest: 0.0305, 0.0605 and 0.02125.
    rows = [
        _row(100, [0.03] * 19 + [0.04]),
        _row(100, [0.06] * 19 + [0.07], rss=180.0),
        _row(100, [0.02] * 19 + [0.045]),
    ]
    text = latency_markdown(LatencyResult("auto", rows))
    (line,) = [x for x in text.splitlines() if x.startswith("| 100 |")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "3"
    assert cells[2] == "0.0300"  # median of the rounds' p50s
    assert float(cells[3]) == pytest.approx(np.median([_p95(r) for r in rows]), abs=1e-4)
    assert cells[4] == "0.0213–0.0605"
    assert cells[6] == "yes (2 of 3 rounds)"
    assert cells[9] == "180"  # the highest round's peak
    assert "Peak memory at 100 observations: 180 MB" in text


def _p95(row: dict[str, object]) -> float:
    return float(np.percentile(row["ask_s"], 95))  # type: ignore[arg-type]


def test_latency_child_reports_its_own_peak_memory_not_its_parents() -> None:
    # ru_maxrss would carry this process's RSS at fork into the child.
    ballast = np.ones(40_000_000)  # 320 MB, touched
    row = run_child("random", 20, 2, timeout_s=120.0)
    assert "error" not in row, row
    assert row["peak_rss_mb"] < 300, row["peak_rss_mb"]
    del ballast


def test_bench_latency_runs_children(tmp_path: Path) -> None:
    out = tmp_path / "latency.md"
    args = ["bench", "latency", "--optimizer", "random", "--sizes", "20", "--repeats", "2"]
    result = runner.invoke(app, [*args, "--rounds", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| 20 | 2 |" in out.read_text()
    result = runner.invoke(app, [*args, "--rounds", "0", "--out", str(out)])
    assert result.exit_code == 2 and "rounds" in result.output

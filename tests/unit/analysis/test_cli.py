"""`autotune analyze NAME`, registered on an app of the test's own."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import typer
from typer.testing import CliRunner

from autotune.cli.analyze import analyze
from autotune.store import Experiment, Store
from autotune.tuner import experiment_space
from tests.unit.analysis._support import (
    GROUPS,
    TRUE_KNOBS,
    create_pg_experiment,
    fill,
    synthetic_trials,
)

app = typer.Typer()
app.command()(analyze)
runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def invoke(*args: str, store_url: str) -> Any:
    return runner.invoke(app, [*args, "--store", store_url], env=WIDE)


def rows(text: str, title: str) -> list[list[str]]:
    """The body cells of the table printed under ``title``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    out: list[list[str]] = []
    for line in lines[start + 4 :]:
        if not line.startswith("│"):
            break
        out.append([cell.strip() for cell in line.strip("│").split("│")])
    return out


def test_text_shows_both_rankings_the_combined_top_k_and_the_metrics(
    store: Store, filled: Experiment, store_url: str
) -> None:
    result = invoke("pg", "--top", "3", store_url=store_url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("pg: ranked from 40 full-length ok trials, 8 knobs, objective tps")
    for title in ("Lasso path: top 3", "Random forest permutation importance", "Combined: top 3"):
        table = rows(out, title)
        assert len(table) == 3
        assert [r[0] for r in table] == ["1", "2", "3"]
        assert {r[1] for r in table[:2]} == TRUE_KNOBS
    metrics = rows(out, "Pruned metrics: 3 of 11 internal (1 constant or unmeasured dropped)")
    assert sorted(int(r[1]) for r in metrics) == sorted(len(g) for g in GROUPS.values())
    for representative, _, others in metrics:
        group = next(g for g in GROUPS.values() if representative in g)
        assert sorted([representative, *others.split(", ")]) == sorted(group)
    # What was printed is what was stored.
    (stored,) = store.analyses(filled, "analyze")
    assert stored.result["top"] == 3
    assert [r[1] for r in rows(out, "Combined: top 3")] == stored.result["top_knobs"]


def test_json_prints_the_stored_result(store: Store, filled: Experiment, store_url: str) -> None:
    result = invoke("pg", "--format", "json", "--top", "2", store_url=store_url)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    (stored,) = store.analyses(filled, "analyze")
    assert printed == stored.result
    assert set(printed["top_knobs"]) == TRUE_KNOBS
    assert printed["metrics"]["k"] == 3


def test_unknown_experiment_is_one_clear_error(store: Store, store_url: str) -> None:
    result = invoke("ghost", store_url=store_url)
    assert result.exit_code == 2
    assert "error: no experiment 'ghost'" in result.stderr
    assert result.stdout == ""


def test_too_few_trials_is_one_clear_error(store: Store, store_url: str) -> None:
    exp = fill(store, create_pg_experiment(store, "short"), n=4)
    result = invoke("short", store_url=store_url)
    assert result.exit_code == 2
    assert (
        "experiment 'short' has 4 finished full-length ok trials; analyze needs at least 6"
        in result.stderr
    )
    assert store.analyses(exp) == []


def test_top_must_be_positive(store: Store, filled: Experiment, store_url: str) -> None:
    result = invoke("pg", "--top", "0", store_url=store_url)
    assert result.exit_code == 2
    assert store.analyses(filled) == []


def test_without_internal_metrics_the_reason_is_printed(store: Store, store_url: str) -> None:
    exp = create_pg_experiment(store, "bare")
    for trial in synthetic_trials(experiment_space(exp), 8):
        workload_only = {k: v for k, v in trial.metrics.items() if "." not in k}
        store.add_trial(exp, replace(trial, metrics=workload_only))
    result = invoke("bare", store_url=store_url)
    assert result.exit_code == 0, result.output
    assert (
        "Pruned metrics: 0 of 0 internal: 0 varying internal metrics; "
        "pruning needs at least 3: all kept"
    ) in result.stdout
    assert "representative" not in result.stdout

"""analyze_experiment and top_knobs over a real SQLite store with a known answer."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from autotune.analysis import analyze_experiment, top_knobs
from autotune.store import Experiment, Store, StoreError
from autotune.tuner import TuningError, experiment_space
from tests.unit.analysis._support import (
    CONSTANT,
    GROUPS,
    KNOBS,
    N_TRIALS,
    TRUE_KNOBS,
    create_pg_experiment,
    group_of,
    synthetic_trials,
)

Analysed = tuple[Store, Experiment, dict[str, Any]]


@pytest.mark.parametrize("ranking", ["lasso", "forest", "combined"])
def test_every_ranking_puts_the_two_true_knobs_first(analysed: Analysed, ranking: str) -> None:
    _, _, result = analysed
    entries = result[ranking]
    assert {e["name"] for e in entries[:2]} == TRUE_KNOBS
    assert sorted(e["name"] for e in entries) == sorted(KNOBS)  # each knob ranked once
    assert [e["rank"] for e in entries] == list(range(1, len(KNOBS) + 1))


def test_scores_separate_the_true_knobs_from_the_rest(analysed: Analysed) -> None:
    _, _, result = analysed
    lasso = {e["name"]: e for e in result["lasso"]}
    forest = {e["name"]: e for e in result["forest"]}
    noise = set(KNOBS) - TRUE_KNOBS
    # The true knobs enter the Lasso path first, at a larger penalty than any other.
    assert min(lasso[k]["score"] for k in TRUE_KNOBS) > max(lasso[k]["score"] for k in noise)
    assert all(lasso[k]["entered_at_step"] is not None for k in TRUE_KNOBS)
    # Shuffling a true knob costs the forest far more R² than shuffling any other.
    assert min(forest[k]["score"] for k in TRUE_KNOBS) > 3 * max(forest[k]["score"] for k in noise)
    assert all(forest[k]["std"] >= 0 for k in KNOBS)
    for entry in result["combined"]:
        assert entry["score"] == (lasso[entry["name"]]["rank"] + forest[entry["name"]]["rank"]) / 2


def test_pruning_finds_the_three_groups_and_one_representative_each(analysed: Analysed) -> None:
    _, _, result = analysed
    metrics = result["metrics"]
    assert metrics["k"] == 3
    assert metrics["reason"] is None
    assert metrics["dropped"] == [CONSTANT]
    assert sorted(group_of(m) for m in metrics["representatives"]) == sorted(GROUPS)
    clusters = {frozenset(c["members"]) for c in metrics["clusters"]}
    assert clusters == {frozenset(members) for members in GROUPS.values()}
    for cluster in metrics["clusters"]:
        assert cluster["representative"] in cluster["members"]
        assert cluster["size"] == len(cluster["members"])
    assert metrics["workload"] == ["latency_avg_ms", "tps"]  # not pruned, not clustered


def test_the_result_is_json_and_stored_with_the_experiment(analysed: Analysed) -> None:
    store, experiment, result = analysed
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    (stored,) = store.analyses(experiment, "analyze")
    assert stored.result == result
    assert result["n_trials"] == N_TRIALS
    assert result["knobs"] == KNOBS
    assert result["objective"]["metric"] == "tps"
    assert result["objective"]["direction"] == "maximize"
    assert result["top_knobs"] == [e["name"] for e in result["combined"][:10]]


def test_the_same_seed_gives_the_same_analysis(
    analysed: Analysed, store: Store, filled: Experiment
) -> None:
    _, _, first = analysed  # the same trials, analysed in another store
    again = analyze_experiment(store, filled, top=3, seed=0)
    for key in ("lasso", "forest", "combined", "metrics", "trials"):
        assert again[key] == first[key], key
    assert again["top_knobs"] == first["top_knobs"][:3]
    assert len(store.analyses(filled, "analyze")) == 1


# -- top_knobs --------------------------------------------------------------------------


def test_top_knobs_analyses_once_and_stores_the_result(store: Store, filled: Experiment) -> None:
    assert store.analyses(filled, "analyze") == []
    assert set(top_knobs(store, "pg", 2)) == TRUE_KNOBS
    (stored,) = store.analyses(filled, "analyze")
    assert top_knobs(store, "pg", 3) == [e["name"] for e in stored.result["combined"][:3]]
    assert len(store.analyses(filled, "analyze")) == 1  # the second call computed nothing
    assert len(top_knobs(store, "pg", 100)) == len(KNOBS)


def test_top_knobs_reads_the_latest_stored_analysis(store: Store, filled: Experiment) -> None:
    made_up = [{"name": name, "rank": i + 1, "score": 0.0} for i, name in enumerate(KNOBS[::-1])]
    store.add_analysis(filled, "analyze", {"combined": made_up[1:]})
    store.add_analysis(filled, "analyze", {"combined": made_up})
    assert top_knobs(store, "pg", 3) == KNOBS[::-1][:3]
    assert len(store.analyses(filled, "analyze")) == 2  # nothing recomputed


def test_top_knobs_of_an_unknown_experiment(store: Store, filled: Experiment) -> None:
    with pytest.raises(StoreError, match=r"no experiment 'ghost' .*known: pg"):
        top_knobs(store, "ghost", 3)


def test_top_knobs_needs_k_of_at_least_one(store: Store, filled: Experiment) -> None:
    with pytest.raises(TuningError, match="k must be at least 1, got 0"):
        top_knobs(store, "pg", 0)


def test_too_few_usable_trials_is_refused(store: Store) -> None:
    exp = create_pg_experiment(store, "few")
    trials = synthetic_trials(experiment_space(exp), 8)
    for trial in trials[:5]:
        store.add_trial(exp, trial)
    store.add_trial(exp, replace(trials[5], fidelity=0.5))
    store.add_trial(exp, replace(trials[6], status="failed", objective=None))
    message = "experiment 'few' has 5 finished full-length ok trials; analyze needs at least 6"
    with pytest.raises(TuningError, match=message):
        top_knobs(store, "few", 2)
    with pytest.raises(TuningError, match=message):
        analyze_experiment(store, exp)
    assert store.analyses(exp) == []

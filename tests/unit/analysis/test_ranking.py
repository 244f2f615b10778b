"""The rankings on hand-made datasets: second-order terms, grouped columns, ties."""

from __future__ import annotations

import numpy as np

from autotune.analysis import Dataset, Ranked, combined_ranking, forest_ranking, lasso_ranking


def dataset(columns: list[str], owners: list[str], x: np.ndarray, loss: np.ndarray) -> Dataset:
    knobs = list(dict.fromkeys(owners))
    return Dataset(
        knobs=knobs,
        features=x,
        columns=columns,
        owners=owners,
        loss=loss,
        metric_names=[],
        metrics=np.empty((len(loss), 0)),
        trials=list(range(1, len(loss) + 1)),
    )


def test_lasso_finds_knobs_that_only_act_together() -> None:
    """y = a * b: neither knob alone correlates with it, their product does."""
    rng = np.random.default_rng(0)
    x = rng.random((60, 4))
    loss = (x[:, 1] - 0.5) * (x[:, 3] - 0.5) + rng.normal(0, 0.005, 60)
    data = dataset(["c", "a", "d", "b"], ["c", "a", "d", "b"], x, loss)
    ranked = lasso_ranking(data)
    assert {r.name for r in ranked[:2]} == {"a", "b"}
    assert ranked[0].score == ranked[1].score  # both enter with the same product term
    assert ranked[0].score > ranked[2].score


def test_a_knob_that_never_varies_ranks_last_with_no_score() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((30, 3))
    x[:, 0] = 0.25
    loss = x[:, 1] + 0.3 * x[:, 2] + rng.normal(0, 0.01, 30)
    data = dataset(["still", "big", "small"], ["still", "big", "small"], x, loss)
    lasso = lasso_ranking(data)
    assert [r.name for r in lasso] == ["big", "small", "still"]
    assert lasso[-1].score == 0.0 and lasso[-1].detail["entered_at_step"] is None
    forest = forest_ranking(data)
    assert [r.name for r in forest][:2] == ["big", "small"]
    assert forest[-1].name == "still" and forest[-1].score == 0.0


def test_the_forest_permutes_an_enum_s_columns_together() -> None:
    """An enum whose value matters: one one-hot knob, scored once, not per column."""
    rng = np.random.default_rng(2)
    n = 45
    mode = rng.integers(0, 3, n)
    onehot = np.eye(3)[mode]
    other = rng.random((n, 1))
    loss = np.array([0.0, 1.0, 3.0])[mode] + rng.normal(0, 0.05, n)
    x = np.hstack([other, onehot])
    data = dataset(
        ["other", "mode=a", "mode=b", "mode=c"], ["other", "mode", "mode", "mode"], x, loss
    )
    forest = forest_ranking(data, seed=3)
    assert [r.name for r in forest] == ["mode", "other"]
    assert forest[0].score > 0.5 > forest[1].score
    assert forest == forest_ranking(data, seed=3)
    assert [r.name for r in lasso_ranking(data)] == ["mode", "other"]


def test_the_combined_ranking_averages_ranks_and_breaks_ties_by_the_forest() -> None:
    lasso = [Ranked("a", 1, 0.9), Ranked("b", 2, 0.5), Ranked("c", 3, 0.1)]
    forest = [Ranked("b", 1, 0.4), Ranked("c", 2, 0.2), Ranked("a", 3, 0.1)]
    combined = combined_ranking(lasso, forest)
    # a: (1+3)/2 = 2, b: (2+1)/2 = 1.5, c: (3+2)/2 = 2.5
    assert [(r.name, r.rank, r.score) for r in combined] == [
        ("b", 1, 1.5),
        ("a", 2, 2.0),
        ("c", 3, 2.5),
    ]
    tied = combined_ranking(
        [Ranked("a", 1, 0.9), Ranked("b", 2, 0.5)], [Ranked("b", 1, 0.4), Ranked("a", 2, 0.1)]
    )
    assert [r.name for r in tied] == ["b", "a"]  # both 1.5; b has the larger importance
    assert tied[0].detail == {"lasso_rank": 2, "forest_rank": 1}

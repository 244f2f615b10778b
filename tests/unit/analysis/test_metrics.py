"""Metric pruning on hand-made matrices."""

from __future__ import annotations

import numpy as np

from autotune.analysis import prune_metrics


def grouped(
    n: int = 30, sizes: tuple[int, ...] = (3, 3), seed: int = 0
) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, len(sizes)))
    names: list[str] = []
    columns: list[np.ndarray] = []
    for g, size in enumerate(sizes):
        for j in range(size):
            names.append(f"g{g}.m{j}")
            columns.append(100 * (j + 1) * (factors[:, g] + rng.normal(0, 0.1, n)))
    return names, np.column_stack(columns)


def test_two_groups_give_two_clusters() -> None:
    names, matrix = grouped(sizes=(4, 3))
    pruned = prune_metrics(names, matrix)
    assert pruned.k == 2
    assert [sorted(c.members) for c in pruned.clusters] == [
        [f"g0.m{j}" for j in range(4)],
        [f"g1.m{j}" for j in range(3)],
    ]
    assert [r.split(".")[0] for r in pruned.representatives] == ["g0", "g1"]
    assert pruned.silhouette is not None and pruned.silhouette > 0.5


def test_pruning_is_deterministic_for_a_seed() -> None:
    names, matrix = grouped(sizes=(3, 3, 2, 4))
    assert prune_metrics(names, matrix, seed=3) == prune_metrics(names, matrix, seed=3)


def test_constant_and_unmeasured_metrics_are_dropped() -> None:
    names, matrix = grouped(sizes=(3, 3))
    nan = np.full((matrix.shape[0], 1), np.nan)
    flat = np.full((matrix.shape[0], 1), 7.0)
    pruned = prune_metrics([*names, "x.nan", "x.flat"], np.hstack([matrix, nan, flat]))
    assert pruned.dropped == ["x.nan", "x.flat"]
    assert pruned.k == 2
    assert not {"x.nan", "x.flat"} & {m for c in pruned.clusters for m in c.members}


def test_fewer_than_three_metrics_are_all_kept_with_a_reason() -> None:
    rng = np.random.default_rng(0)
    matrix = np.column_stack([rng.normal(size=10), rng.normal(size=10), np.zeros(10)])
    pruned = prune_metrics(["a.x", "b.y", "c.zero"], matrix)
    assert pruned.representatives == ["a.x", "b.y"]
    assert pruned.k is None
    assert pruned.reason is not None and "2 varying internal metrics" in pruned.reason
    assert pruned.dropped == ["c.zero"]
    none = prune_metrics([], np.empty((10, 0)))
    assert none.representatives == [] and none.reason is not None


def test_a_metric_missing_in_some_trials_still_clusters_with_its_group() -> None:
    names, matrix = grouped(sizes=(3, 3))
    matrix[[1, 5], 0] = np.nan
    pruned = prune_metrics(names, matrix)
    assert {frozenset(c.members) for c in pruned.clusters} == {
        frozenset(names[:3]),
        frozenset(names[3:]),
    }

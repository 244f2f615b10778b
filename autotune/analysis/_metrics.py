"""Metric pruning, as OtterTune does it (Van Aken et al., SIGMOD 2017, §4).

A server exposes hundreds of counters, and most move together: commits, WAL
bytes and CPU seconds all rise with throughput. Factor analysis reduces each
metric to its loadings on a few latent factors; k-means groups metrics whose
loadings are alike, and one metric per group (the one nearest its centre)
stands for the rest. The number of groups is chosen by silhouette score.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import FactorAnalysis
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

MAX_FACTORS = 5
MAX_CLUSTERS = 8
MIN_METRICS = 3


@dataclass(frozen=True)
class Cluster:
    representative: str
    members: list[str]  # sorted, the representative included

    def to_json(self) -> dict[str, Any]:
        return {
            "representative": self.representative,
            "size": len(self.members),
            "members": self.members,
        }


@dataclass(frozen=True)
class Pruned:
    """The metrics that stand for all the others, and the groups they stand for."""

    representatives: list[str]
    clusters: list[Cluster]
    k: int | None  # None: no clustering was done (see reason)
    reason: str | None = None  # why the metrics were kept as they are, if they were
    dropped: list[str] = field(default_factory=list)  # constant or never measured
    silhouette: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "representatives": self.representatives,
            "clusters": [c.to_json() for c in self.clusters],
            "k": self.k,
            "reason": self.reason,
            "dropped": self.dropped,
            "silhouette": self.silhouette,
        }


def informative(names: list[str], matrix: np.ndarray) -> tuple[list[str], list[str]]:
    """Split metrics into those that vary across trials and those that do not (or are NaN)."""
    keep: list[str] = []
    drop: list[str] = []
    for j, name in enumerate(names):
        column = matrix[:, j]
        finite = column[np.isfinite(column)]
        spread = float(np.ptp(finite)) if finite.size >= 2 else 0.0
        if spread > 1e-12 * max(1.0, float(np.abs(finite).max(initial=0.0))):
            keep.append(name)
        else:
            drop.append(name)
    return keep, drop


def standardise(matrix: np.ndarray) -> np.ndarray:
    """Z-scores per column; a value a trial lacks becomes the mean (0)."""
    mean = np.nanmean(matrix, axis=0)
    std = np.nanstd(matrix, axis=0)
    std[std == 0] = 1.0
    z = (matrix - mean) / std
    return np.asarray(np.where(np.isfinite(z), z, 0.0))


def prune_metrics(names: list[str], matrix: np.ndarray, seed: int = 0) -> Pruned:
    """Representatives of ``names`` (columns of ``matrix``, one row per trial)."""
    keep, dropped = informative(names, matrix)
    if len(keep) < MIN_METRICS:
        reason = (
            f"{len(keep)} varying internal metric{'s' if len(keep) != 1 else ''}; "
            f"pruning needs at least {MIN_METRICS}: all kept"
        )
        return Pruned(
            representatives=keep,
            clusters=[Cluster(name, [name]) for name in keep],
            k=None,
            reason=reason,
            dropped=dropped,
        )
    index = {name: i for i, name in enumerate(names)}
    z = standardise(matrix[:, [index[name] for name in keep]])
    n_trials, n_metrics = z.shape
    n_factors = max(1, min(MAX_FACTORS, n_trials - 1, n_metrics))
    fa = FactorAnalysis(n_components=n_factors, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on tiny samples: loadings still usable
        fa.fit(z)
    loadings = np.asarray(fa.components_.T)  # (metrics, factors)
    labels, k, score = _best_kmeans(loadings, seed)
    clusters: list[Cluster] = []
    for label in sorted(set(labels.tolist())):
        rows = [int(r) for r in np.flatnonzero(labels == label)]
        centre = loadings[rows].mean(axis=0)
        distance = {r: float(np.linalg.norm(loadings[r] - centre)) for r in rows}
        # Nearest to the centre; on a tie, the first by name, so runs agree.
        best = min(rows, key=lambda r: (distance[r], keep[r]))
        clusters.append(Cluster(keep[best], sorted(keep[r] for r in rows)))
    clusters.sort(key=lambda c: (-len(c.members), c.representative))
    return Pruned(
        representatives=[c.representative for c in clusters],
        clusters=clusters,
        k=k,
        dropped=dropped,
        silhouette=score,
    )


def _best_kmeans(loadings: np.ndarray, seed: int) -> tuple[np.ndarray, int, float]:
    """k-means for each k in 2..min(8, metrics-1); the k with the best silhouette wins."""
    n_metrics = loadings.shape[0]
    best: tuple[np.ndarray, int, float] | None = None
    for k in range(2, min(MAX_CLUSTERS, n_metrics - 1) + 1):
        # Tens of points: BLAS/OpenMP threads only add overhead (20x on a busy host).
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")  # fewer distinct points than k: checked below
            labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(loadings)
        if len(set(labels.tolist())) != k:
            continue  # fewer distinct loadings than k: not a real split into k
        score = float(silhouette_score(loadings, labels))
        if best is None or score > best[2] + 1e-12:
            best = (labels, k, score)
    if best is None:  # three metrics (only k=2 allowed) that cannot be told apart
        return np.zeros(n_metrics, dtype=int), 1, 0.0
    return best

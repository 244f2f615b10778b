"""Which knobs matter: OtterTune's Lasso path, a forest's permutation importance, and both.

The Lasso path (Van Aken et al., SIGMOD 2017, §5) fits the loss on the knob
features and their second-order terms while the L1 penalty shrinks from "keep
nothing" to "keep almost everything"; the earlier a knob's first feature gets a
nonzero weight, the more of the loss it explains. It is linear at heart, so a
random forest's permutation importance, which catches any shape of effect,
ranks the knobs a second way, and the combined ranking averages the two.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.inspection import permutation_importance
from sklearn.linear_model import lasso_path
from sklearn.metrics import r2_score
from sklearn.preprocessing import PolynomialFeatures

from autotune.analysis._data import Dataset

PATH_LENGTH = 200  # penalties along the Lasso path
PATH_EPS = 1e-4  # the smallest penalty, as a share of the largest
N_TREES = 100
N_REPEATS = 10


@dataclass(frozen=True)
class Ranked:
    """One knob's place in a ranking; ``score`` is the method's own measure (see each)."""

    name: str
    rank: int  # 1 is the most important
    score: float
    detail: dict[str, float | int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rank": self.rank, "score": self.score, **self.detail}


def _standardise(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    std[std == 0] = 1.0
    return np.asarray((x - x.mean(axis=0)) / std)


def _varying(x: np.ndarray) -> np.ndarray:
    """Columns that take more than one value: the others say nothing and break scaling."""
    if x.shape[0] == 0:
        return np.zeros(x.shape[1], dtype=bool)
    return np.asarray(np.ptp(x, axis=0) > 1e-12)


def lasso_ranking(data: Dataset) -> list[Ranked]:
    """Knobs in the order their first feature (linear, square or product) enters the path.

    score: the penalty at which the knob entered, as a share of the largest one
    (1.0 enters first, 0.0 never); ties go to the larger |coefficient| at the
    path's end, where the penalty is smallest.
    """
    varying = _varying(data.features)
    base_owner = [o for o, keep in zip(data.owners, varying, strict=True) if keep]
    entry: dict[str, int] = {}
    final: dict[str, float] = dict.fromkeys(data.knobs, 0.0)
    alphas = np.array([1.0])
    y = data.loss - data.loss.mean()
    if base_owner and float(y.std()) > 0:
        x = _standardise(data.features[:, varying])
        poly = PolynomialFeatures(degree=2, include_bias=False)
        terms = poly.fit_transform(x)
        keep = _varying(terms)  # e.g. products of one enum's one-hot columns are all 0
        terms = _standardise(terms[:, keep])
        powers = np.asarray(poly.powers_)[keep]
        owners = [{base_owner[j] for j in np.flatnonzero(p)} for p in powers]
        y = y / y.std()
        alpha_max = float(np.abs(terms.T @ y).max()) / len(y)
        if alpha_max > 0:
            alphas = alpha_max * np.geomspace(1.0, PATH_EPS, PATH_LENGTH)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning near the path's end
                alphas, coefs, _ = lasso_path(terms, y, alphas=alphas)
            active = np.abs(coefs) > 1e-10  # (terms, alphas)
            for t, knobs in enumerate(owners):
                hits = np.flatnonzero(active[t])
                for knob in knobs:
                    if hits.size:
                        entry[knob] = min(entry.get(knob, PATH_LENGTH), int(hits[0]))
                    final[knob] = max(final[knob], float(abs(coefs[t, -1])))
    order = sorted(
        data.knobs, key=lambda k: (entry.get(k, math.inf), -final[k], data.knobs.index(k))
    )
    ranked = []
    for rank, knob in enumerate(order, start=1):
        step = entry.get(knob)
        score = 0.0 if step is None else float(alphas[step] / alphas[0])
        ranked.append(
            Ranked(knob, rank, score, {"entered_at_step": step, "final_coef": final[knob]})
        )
    return ranked


class _KnobBlocks:
    """A fitted forest read through one index column per knob.

    Column k of the input holds, per row, which trial to take knob k's feature
    columns from. Permuting that column, as ``permutation_importance`` does,
    shuffles all of a knob's columns together: an enum's one-hot columns or a
    knob's special-value indicator never get split into impossible rows.
    """

    def __init__(self, model: RandomForestRegressor, features: np.ndarray, blocks: list[list[int]]):
        self.model = model
        self.features = features
        self.blocks = blocks

    def fit(self, index: np.ndarray, y: np.ndarray) -> _KnobBlocks:
        """Already fitted; sklearn only checks that an estimator can be."""
        return self

    def predict(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=int)
        x = np.empty((index.shape[0], self.features.shape[1]))
        for k, columns in enumerate(self.blocks):
            x[:, columns] = self.features[index[:, k]][:, columns]
        # A forest predicts the mean of its trees. Its own predict (and each tree's)
        # validates and dispatches per tree, which costs most of the time here, where
        # it runs trees x knobs x repeats times; the trees' arrays give the same numbers.
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        trees = [t.tree_ for t in self.model.estimators_]
        total = np.zeros(x.shape[0])
        for tree in trees:
            total += np.asarray(tree.predict(x32)).reshape(x.shape[0], -1)[:, 0]
        return total / len(trees)


def _r2(estimator: _KnobBlocks, x: np.ndarray, y: np.ndarray) -> float:
    return float(r2_score(y, estimator.predict(x)))


def forest_ranking(data: Dataset, seed: int = 0) -> list[Ranked]:
    """Knobs by how much R² a seeded random forest loses when the knob's columns are shuffled.

    score: the mean loss of R² over the repeats (its std is kept as ``std``).
    """
    model = RandomForestRegressor(n_estimators=N_TREES, random_state=seed, n_jobs=1)
    model.fit(data.features, data.loss)
    blocks = [[j for j, o in enumerate(data.owners) if o == knob] for knob in data.knobs]
    n = data.features.shape[0]
    index = np.repeat(np.arange(n)[:, None], len(data.knobs), axis=1)
    result = permutation_importance(
        _KnobBlocks(model, data.features, blocks),
        index,
        data.loss,
        scoring=_r2,
        n_repeats=N_REPEATS,
        random_state=seed,
        n_jobs=1,
    )
    mean = [float(m) for m in result.importances_mean]
    std = [float(s) for s in result.importances_std]
    order = sorted(range(len(data.knobs)), key=lambda i: (-mean[i], i))
    return [
        Ranked(data.knobs[i], rank, mean[i], {"std": std[i]})
        for rank, i in enumerate(order, start=1)
    ]


def combined_ranking(lasso: list[Ranked], forest: list[Ranked]) -> list[Ranked]:
    """The mean of both ranks (score, lower is better); ties go to the forest's importance."""
    lasso_rank = {r.name: r.rank for r in lasso}
    by_forest = {r.name: r for r in forest}
    mean = {name: (lasso_rank[name] + by_forest[name].rank) / 2 for name in lasso_rank}
    order = sorted(mean, key=lambda k: (mean[k], -by_forest[k].score, by_forest[k].rank))
    return [
        Ranked(
            name,
            rank,
            mean[name],
            {"lasso_rank": lasso_rank[name], "forest_rank": by_forest[name].rank},
        )
        for rank, name in enumerate(order, start=1)
    ]

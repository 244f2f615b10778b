"""A random-forest surrogate scored by expected improvement, for the ``auto`` portfolio.

Trees split on one feature at a time, so they handle enums, special values
and cliffs (a config that halves throughput past some threshold) that a
smooth kernel blurs. The spread of the trees' predictions stands in for the
posterior std (Hutter et al., LION 2011).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autotune.optimizers._gp_model import subsample
from autotune.optimizers._search import Score
from autotune.spec import Config

MAX_ROWS = 1500


def forest_score(
    history: Sequence[tuple[Config, float | None]],
    rows: Sequence[np.ndarray],
    rng: np.random.Generator,
    n_trees: int = 16,
) -> Score:
    from sklearn.ensemble import RandomForestRegressor

    from autotune.optimizers.gp import expected_improvement, transform_losses

    ok = [loss for _, loss in history if loss is not None]
    worst, best = max(ok), min(ok)
    penalty = worst + max(worst - best, abs(worst) * 0.1, 1e-9)
    y = transform_losses(np.array([penalty if loss is None else loss for _, loss in history]))
    X = np.vstack(rows)
    idx = subsample(y, MAX_ROWS, rng)
    forest = RandomForestRegressor(
        n_estimators=n_trees,
        max_features=0.8,
        min_samples_leaf=2,
        random_state=int(rng.integers(2**31)),
        n_jobs=1,
    )
    forest.fit(X[idx], y[idx])
    incumbent = float(y.min())

    def score(C: np.ndarray) -> np.ndarray:
        # The trees' own predict skips sklearn's per-call input validation (~1 ms a tree).
        C32 = np.asarray(C, dtype=np.float32)
        per_tree = np.stack(
            [tree.tree_.predict(C32).reshape(len(C32), -1)[:, 0] for tree in forest.estimators_]
        )
        mean, std = per_tree.mean(0), np.maximum(per_tree.std(0), 1e-3)
        return expected_improvement(mean, std, incumbent)

    return score

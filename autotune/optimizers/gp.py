"""Gaussian-process Bayesian optimisation with expected improvement.

The model is scikit-learn's GaussianProcessRegressor on the encoded space
(numeric knobs scaled, log where the spec says so, enums one-hot) with a
Matern 5/2 kernel plus a white-noise term, so measurement noise is learned
instead of interpolated (Snoek et al., NeurIPS 2012). EI is maximised over
random valid configs plus local moves around the best ones, which respects
integer, enum and special values because every candidate is a real config.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from autotune.optimizers._base import Optimizer
from autotune.optimizers.lhs import lhs_design
from autotune.space import Space
from autotune.spec import Config

if TYPE_CHECKING:
    from sklearn.gaussian_process import GaussianProcessRegressor


def expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.01
) -> np.ndarray:
    """EI for minimisation (Jones et al., 1998)."""
    from scipy.stats import norm

    std = np.maximum(std, 1e-12)
    z = (best - mean - xi) / std
    return np.asarray((best - mean - xi) * norm.cdf(z) + std * norm.pdf(z))


class GPOptimizer(Optimizer):
    name = "gp"

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        n_init: int | None = None,
        n_candidates: int = 1000,
        n_local: int = 300,
        xi: float = 0.01,
    ) -> None:
        super().__init__(space, seed)
        self.n_init = n_init if n_init is not None else min(10, max(3, len(space) // 2 + 1))
        self.n_candidates = n_candidates
        self.n_local = n_local
        self.xi = xi
        self.model_: GaussianProcessRegressor | None = None

    def _training_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        ok = [loss for _, loss in self.history_ if loss is not None]
        if len(ok) < 2:
            return None
        worst, best = max(ok), min(ok)
        # Failures enter as a penalty worse than the worst seen, which pushes
        # the model away from regions that break the system.
        penalty = worst + max(worst - best, abs(worst) * 0.1, 1e-9)
        X = self.space.encode_many(c for c, _ in self.history_)
        y = np.array([penalty if loss is None else loss for _, loss in self.history_])
        return X, y

    def _fit(self, X: np.ndarray, y: np.ndarray) -> GaussianProcessRegressor:
        # scikit-learn loads in about a second: only sessions that fit a model pay for it.
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from threadpoolctl import threadpool_limits

        d = X.shape[1]
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
            length_scale=np.full(d, 0.5), length_scale_bounds=(1e-2, 1e2), nu=2.5
        ) + WhiteKernel(noise_level=0.05, noise_level_bounds=(1e-6, 1.0))
        model = GaussianProcessRegressor(
            kernel=kernel,
            normalize_y=True,
            n_restarts_optimizer=2,
            random_state=int(self.rng.integers(2**31)),
        )
        # One BLAS thread: on small hosts threads fight over cores and fits get ~5x slower.
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        return model

    def ask(self, n: int = 1, pending: Sequence[Config] = ()) -> list[Config]:
        design = lhs_design(self.space, self.n_init, self.seed)
        started = len(self.history_) + len(pending)
        if started < self.n_init:
            # The baseline takes the first slot; the design fills the rest, and
            # the model takes over once the design is used up.
            k = min(n, self.n_init - started)
            picked = self._fresh(design[started:] + design, k, exclude=pending)
            if k == n:
                return picked
            return picked + self.ask(n - k, pending=[*pending, *picked])
        data = self._training_data()
        if data is None:
            return self._fresh([], n, exclude=pending)
        X, y = data
        picked = []
        # Kriging believer: configs still being measured elsewhere count as
        # returning the model's mean, so the batch spreads away from them.
        if pending:
            model = self._fit(X, y)
            P = self.space.encode_many(pending)
            X, y = np.vstack([X, P]), np.append(y, model.predict(P))
        for _ in range(n):
            model = self._fit(X, y)
            self.model_ = model
            candidate = self._maximise_ei(model, float(y.min()), [*pending, *picked])
            picked.append(candidate)
            # Kriging believer: pretend the model's mean came true, so the next
            # pick in the same batch goes elsewhere (Ginsbourger et al., 2010).
            x = self.space.encode(candidate)[None, :]
            X = np.vstack([X, x])
            y = np.append(y, model.predict(x)[0])
        return picked

    def _maximise_ei(
        self, model: GaussianProcessRegressor, best: float, picked: list[Config]
    ) -> Config:
        candidates = self.space.sample(self.rng, self.n_candidates)
        ranked = sorted(
            ((c, loss) for c, loss in self.history_ if loss is not None), key=lambda t: t[1]
        )
        for config, _ in ranked[:5]:
            candidates += self.space.neighbours(config, self.rng, self.n_local // 5)
        seen = self.seen() | {self.space.key(c) for c in picked}
        candidates = [c for c in candidates if self.space.key(c) not in seen]
        if not candidates:
            return self._fresh([], 1, exclude=picked)[0]
        mean, std = model.predict(self.space.encode_many(candidates), return_std=True)
        ei = expected_improvement(mean, std, best, self.xi)
        return candidates[int(np.argmax(ei))]

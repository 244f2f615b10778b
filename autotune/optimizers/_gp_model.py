"""A small, fast Gaussian process: Matern 5/2 with one length scale per feature plus noise.

scikit-learn's GaussianProcessRegressor takes seconds to fit 100 points in 20
dimensions on a small host, which breaks the tuner's latency budget. This one
fits the same model (marginal likelihood, analytic gradients, L-BFGS-B) in
milliseconds, warm-starts from the previous hyperparameters, and bounds its
cost at thousands of observations by fitting hyperparameters on a subsample
and conditioning on the best points plus a random share of the rest.

Length scales carry a weak log-normal prior, which keeps ARD sane when there
are fewer observations than dimensions, and the noise share is bounded, so a
small sample is not written off as all noise. An optional log-normal prior on
the noise (``noise_prior``) pulls a small sample's fit further from that
"all noise" optimum while still letting real noise through.

Each observation's noise variance may be scaled (``noise_scale``): a mean over a
run 1/φ as long has about 1/φ times the variance, so a short run can be given
less weight than a full one without a second hyperparameter.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

SQRT5 = math.sqrt(5.0)
LOG_LS_BOUNDS = (math.log(1e-2), math.log(1e3))
LOG_SIGNAL_BOUNDS = (math.log(1e-2), math.log(1e2))
# At most 30% of the standardised variance is noise: with few points an
# "everything is noise" fit is a strong local optimum that makes the search blind
# (it measured 3x worse regret on noisy Hartmann-6 with the bound at 100%).
LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(0.3))


def _sq_dists(A: np.ndarray, B: np.ndarray, ls: np.ndarray) -> np.ndarray:
    a, b = A / ls, B / ls
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.asarray(np.maximum(d2, 0.0))


def _matern(d2: np.ndarray) -> np.ndarray:
    r = np.sqrt(d2)
    return np.asarray((1.0 + SQRT5 * r + 5.0 / 3.0 * d2) * np.exp(-SQRT5 * r))


def subsample(y: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``limit`` rows: the best half by ``y`` and a random share of the rest.

    The acquisition cares most about the region near the incumbent; the random
    share keeps the model honest elsewhere.
    """
    n = len(y)
    if n <= limit:
        return np.arange(n)
    order = np.argsort(y, kind="stable")
    best = order[: limit // 2]
    rest = rng.choice(order[limit // 2 :], size=limit - len(best), replace=False)
    return np.sort(np.concatenate([best, rest]))


@dataclass
class GPModel:
    """Fit on (X, y) with y already standardised; predict mean and std in the same units."""

    max_fit: int = 100
    max_points: int = 300
    max_iter: int = 80
    warm_iter: int = 25
    noise_prior: tuple[float, float] | None = None  # (mean, sd) of the log noise variance

    theta_: np.ndarray | None = None  # log length scales..., log signal, log noise
    X_: np.ndarray | None = None
    alpha_: np.ndarray | None = None
    L_: np.ndarray | None = None

    @staticmethod
    def default_theta(d: int) -> np.ndarray:
        # Start short (0.5 of the unit range) and let the data lengthen: starting at
        # the prior's long median lands small-data fits in an "all noise" optimum.
        return np.concatenate([np.full(d, math.log(0.5)), [0.0, math.log(1e-2)]])

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        rng: np.random.Generator,
        theta0: np.ndarray | None = None,
        optimise: bool = True,
        noise_scale: np.ndarray | None = None,
    ) -> GPModel:
        """``noise_scale``: each observation's noise variance over the learned one (1 if None)."""
        d = X.shape[1]
        scale = None if noise_scale is None else np.asarray(noise_scale, dtype=float)
        if scale is not None and (scale.shape != y.shape or not np.all(scale > 0)):
            raise ValueError("noise_scale needs one positive value per observation")
        start = theta0 if theta0 is not None and len(theta0) == d + 2 else None
        if optimise or start is None:
            idx = subsample(y, self.max_fit, rng)
            self.theta_ = self._optimise(
                X[idx], y[idx], start, None if scale is None else scale[idx]
            )
        else:
            self.theta_ = np.asarray(start, dtype=float)
        idx = subsample(y, self.max_points, rng)
        self.X_ = X[idx]
        K = self._kernel(self.X_, self.X_, self.theta_)
        noise = math.exp(self.theta_[-1])
        K[np.diag_indices_from(K)] += (noise if scale is None else noise * scale[idx]) + 1e-8
        self.L_ = _cholesky(K)
        self.alpha_ = _cho_solve(self.L_, y[idx])
        return self

    def predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.theta_ is not None and self.X_ is not None
        assert self.L_ is not None and self.alpha_ is not None
        Ks = self._kernel(Xs, self.X_, self.theta_)
        mean = Ks @ self.alpha_
        from scipy.linalg import solve_triangular

        v = solve_triangular(self.L_, Ks.T, lower=True, check_finite=False)
        var = math.exp(self.theta_[-2]) - (v * v).sum(0)
        return mean, np.sqrt(np.maximum(var, 1e-12))

    @property
    def noise(self) -> float:
        """The learned observation noise variance, in standardised units."""
        assert self.theta_ is not None
        return math.exp(self.theta_[-1])

    @staticmethod
    def _kernel(A: np.ndarray, B: np.ndarray, theta: np.ndarray) -> np.ndarray:
        ls = np.exp(theta[:-2])
        return math.exp(theta[-2]) * _matern(_sq_dists(A, B, ls))

    def _optimise(
        self, X: np.ndarray, y: np.ndarray, start: np.ndarray | None, scale: np.ndarray | None
    ) -> np.ndarray:
        from scipy.optimize import minimize

        d = X.shape[1]
        diff2 = ((X[:, None, :] - X[None, :, :]) ** 2).reshape(-1, d)  # reused by every evaluation
        bounds = [LOG_LS_BOUNDS] * d + [LOG_SIGNAL_BOUNDS, LOG_NOISE_BOUNDS]
        # Warm starts from the last fit converge in a few steps. A cold start also
        # runs while data is small (cheap, and a warm start can stay stuck in an
        # "all noise" optimum) and whenever the data doubled past that.
        n = len(y)
        cold = start is None or n < COLD_BELOW or (n & (n - 1) == 0)
        starts = ([] if start is None else [(start, self.warm_iter)]) + (
            [(self.default_theta(d), self.max_iter)] if cold else []
        )
        best_theta, best_value = starts[0][0], math.inf
        for theta0, iterations in starts:
            try:
                result = minimize(
                    _nll,
                    theta0,
                    args=(diff2, y, self.noise_prior, scale),
                    jac=True,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"maxiter": iterations},
                )
            except np.linalg.LinAlgError:
                continue
            if result.fun < best_value:
                best_theta, best_value = np.asarray(result.x), float(result.fun)
        return np.asarray(best_theta, dtype=float)


# A weak log-normal prior on each length scale, centred on the unit range. The
# dimension-scaled prior of Hvarfner et al. (ICML 2024) was tried and measured
# worse on Hartmann-6 (sparse signal, 30 evaluations): it explained the data as noise.
PRIOR_MU = 0.0
PRIOR_SIGMA = math.sqrt(3.0)
COLD_BELOW = 100


def _nll(
    theta: np.ndarray,
    diff2: np.ndarray,
    y: np.ndarray,
    noise_prior: tuple[float, float] | None = None,
    scale: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood (plus the priors) and its gradient.

    ``scale`` multiplies the noise variance per observation (all 1 if None).

    ``diff2`` is (n*n, d): squared differences per dimension, flattened so both
    the distances and the length-scale gradient are single BLAS products.
    """
    n = len(y)
    d = diff2.shape[1]
    log_ls, log_sig, log_noise = theta[:d], theta[d], theta[d + 1]
    inv_ls2 = np.exp(-2.0 * log_ls)
    d2 = (diff2 @ inv_ls2).reshape(n, n)
    r = np.sqrt(d2)
    e = np.exp(-SQRT5 * r)
    sig = math.exp(log_sig)
    K0 = sig * (1.0 + SQRT5 * r + 5.0 / 3.0 * d2) * e
    K = K0.copy()
    noise = math.exp(log_noise) if scale is None else math.exp(log_noise) * scale
    K[np.diag_indices(n)] += noise + 1e-8
    try:
        L = _cholesky(K)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = _cho_solve(L, y)
    Kinv = _inverse_from_cholesky(L)
    value = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum())
    value += 0.5 * n * math.log(2 * math.pi)
    W = np.outer(alpha, alpha) - Kinv
    G = sig * (5.0 / 3.0) * (1.0 + SQRT5 * r) * e
    grad = np.empty_like(theta)
    grad[:d] = -0.5 * ((W * G).reshape(-1) @ diff2) * inv_ls2
    grad[d] = -0.5 * float((W * K0).sum())
    # Unscaled, the trace form: the same floating-point sums as before scales existed.
    grad[d + 1] = -0.5 * (
        math.exp(log_noise) * float(np.trace(W)) if scale is None else float(np.diag(W) @ noise)
    )
    mu = PRIOR_MU
    value += float(((log_ls - mu) ** 2).sum()) / (2 * PRIOR_SIGMA**2)
    grad[:d] += (log_ls - mu) / PRIOR_SIGMA**2
    if noise_prior is not None:
        centre, sd = noise_prior
        value += (log_noise - centre) ** 2 / (2 * sd**2)
        grad[d + 1] += (log_noise - centre) / sd**2
    return value, grad


def _inverse_from_cholesky(L: np.ndarray) -> np.ndarray:
    from scipy.linalg import lapack

    inv, info = lapack.dpotri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("dpotri failed")
    inv = np.asarray(inv)
    # dpotri fills the lower triangle; mirror it (a copy, so bit for bit the same).
    upper = _upper_indices(len(inv))
    inv[upper] = inv.T[upper]
    return inv


@functools.lru_cache(maxsize=8)
def _upper_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


def _cholesky(K: np.ndarray) -> np.ndarray:
    from scipy.linalg import cholesky

    return np.asarray(cholesky(K, lower=True, check_finite=False))


def _cho_solve(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.linalg import cho_solve

    return np.asarray(cho_solve((L, True), b, check_finite=False))

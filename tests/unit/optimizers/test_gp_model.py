"""The fast GP: likelihood gradient, interpolation, noise, warm starts, subsampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import approx_fprime, minimize

from autotune.optimizers._gp_model import (
    LOG_LS_BOUNDS,
    LOG_NOISE_BOUNDS,
    LOG_SIGNAL_BOUNDS,
    GPModel,
    _nll,
    subsample,
)

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def diffs(X: np.ndarray) -> np.ndarray:
    """What ``GPModel._optimise`` hands ``_nll``: per-dimension squared differences."""
    d = X.shape[1]
    return ((X[:, None, :] - X[None, :, :]) ** 2).reshape(-1, d)


def standardise(y: np.ndarray) -> np.ndarray:
    return np.asarray((y - y.mean()) / y.std())


def f1(X: np.ndarray) -> np.ndarray:
    return np.asarray(np.sin(6 * X[:, 0]))


def f2(X: np.ndarray) -> np.ndarray:
    return np.asarray(np.sin(3 * X[:, 0]) + np.cos(2 * X[:, 1]))


def f3(X: np.ndarray) -> np.ndarray:
    return np.asarray(np.sin(3 * X[:, 0]) + np.cos(2 * X[:, 1]) + X[:, 2] ** 2)


def fit(X: np.ndarray, y: np.ndarray, **kwargs: object) -> GPModel:
    return GPModel().fit(X, y, np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]


def noisy_f3(seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """12 noisy points of ``f3``: the generator (for further draws), y and ``diffs(X)``."""
    rng = np.random.default_rng(seed)
    X = rng.random((12, 3))
    return rng, standardise(f3(X) + 0.1 * rng.normal(size=12)), diffs(X)


# -- the likelihood -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_nll_gradient_matches_finite_differences(seed: int) -> None:
    rng, y, diff2 = noisy_f3(seed)
    d = diff2.shape[1]
    theta = np.concatenate(
        [rng.uniform(-1.5, 1.5, d), [rng.uniform(-1.0, 1.0)], [rng.uniform(-5.0, -1.0)]]
    )
    value, grad = _nll(theta, diff2, y)
    assert np.isfinite(value) and grad.shape == theta.shape

    def f(t: np.ndarray) -> float:
        return _nll(t, diff2, y)[0]

    numeric = approx_fprime(theta, f, 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(grad).max()))


@pytest.mark.parametrize("seed", range(3))
def test_noise_prior_adds_its_log_density_and_its_gradient(seed: int) -> None:
    rng, y, diff2 = noisy_f3(seed)
    d = diff2.shape[1]
    theta = np.concatenate([rng.uniform(-1.5, 1.5, d), [0.3], [rng.uniform(-7.0, -1.0)]])
    prior = (-5.0, 0.7)
    plain, plain_grad = _nll(theta, diff2, y)
    value, grad = _nll(theta, diff2, y, prior)
    offset = theta[-1] - prior[0]
    assert value - plain == pytest.approx(offset**2 / (2 * prior[1] ** 2))
    np.testing.assert_allclose(grad[:-1], plain_grad[:-1])
    assert grad[-1] - plain_grad[-1] == pytest.approx(offset / prior[1] ** 2)
    numeric = approx_fprime(theta, lambda t: _nll(t, diff2, y, prior)[0], 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(grad).max()))


@pytest.mark.parametrize("seed", range(3))
def test_nll_gradient_with_noise_scales_matches_finite_differences(seed: int) -> None:
    rng, y, diff2 = noisy_f3(seed)
    n, d = len(y), diff2.shape[1]
    theta = np.concatenate([rng.uniform(-1.5, 1.5, d), [0.2], [rng.uniform(-4.0, -1.0)]])
    scale = rng.choice([1.0, 3.0, 9.0], size=n)
    value, grad = _nll(theta, diff2, y, None, scale)
    numeric = approx_fprime(theta, lambda t: _nll(t, diff2, y, None, scale)[0], 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(grad).max()))
    # Scales of one are the unscaled likelihood.
    plain, plain_grad = _nll(theta, diff2, y)
    ones, ones_grad = _nll(theta, diff2, y, None, np.ones(n))
    assert ones == pytest.approx(plain) and value != pytest.approx(plain)
    np.testing.assert_allclose(ones_grad, plain_grad)


def test_nll_is_lower_at_a_sensible_theta_than_at_a_silly_one() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((20, 2))
    y = standardise(f2(X))
    diff2 = diffs(X)
    sensible = np.array([0.0, 0.0, 0.0, math.log(1e-4)])
    silly = np.array([math.log(1e-2), math.log(1e-2), 0.0, math.log(1e-4)])  # white noise
    assert _nll(sensible, diff2, y)[0] < _nll(silly, diff2, y)[0] - 10


# -- fitting and predicting -------------------------------------------------------------


def test_fit_interpolates_a_smooth_1d_function() -> None:
    X = np.linspace(0.0, 1.0, 12)[:, None]
    y = f1(X)
    m, s = y.mean(), y.std()
    gp = fit(X, (y - m) / s)
    Xq = np.linspace(0.02, 0.98, 40)[:, None]
    mean, std = gp.predict(Xq)
    assert mean.shape == std.shape == (40,)
    assert np.abs(mean * s + m - f1(Xq)).max() < 0.05
    assert gp.noise < 1e-3  # nothing to explain as noise
    # certain at the data, uncertain far away, where the std tends to the signal's
    at_data = gp.predict(X)[1]
    far = gp.predict(np.array([[3.0]]))[1]
    assert at_data.max() < 0.05
    assert far[0] > 10 * at_data.max()
    assert far[0] == pytest.approx(math.exp(gp.theta_[-2] / 2), rel=0.05)  # type: ignore[index]


def test_std_grows_with_the_distance_from_the_data() -> None:
    X = np.linspace(0.0, 0.5, 8)[:, None]  # data on the left half only
    gp = fit(X, standardise(f1(X)))
    _, std = gp.predict(np.array([[0.25], [0.6], [0.8], [1.0]]))
    assert std[0] < std[1] < std[2] < std[3]


def test_fit_interpolates_a_smooth_3d_function() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    y = f3(X)
    m, s = y.mean(), y.std()
    gp = fit(X, (y - m) / s)
    Xq = rng.uniform(0.1, 0.9, (200, 3))
    mean, std = gp.predict(Xq)
    rmse = float(np.sqrt(np.mean((mean * s + m - f3(Xq)) ** 2)))
    assert rmse < 0.05 * s
    assert np.all(std > 0)
    assert gp.predict(X)[1].max() < np.median(std)


@pytest.mark.parametrize("seed", [0, 1])
def test_learned_noise_is_larger_on_noisy_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.random((30, 1))
    clean = f1(X)
    noisy = clean + 0.3 * clean.std() * rng.normal(size=30)
    quiet = fit(X, standardise(clean)).noise
    loud = fit(X, standardise(noisy)).noise
    assert quiet < 1e-3
    # the true noise variance, standardised, is about 0.09 / 1.09
    assert 0.02 < loud < 0.4
    assert loud > 100 * quiet


def test_noise_prior_shrinks_the_learned_noise_but_still_learns_it() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((30, 1))
    clean = f1(X)
    noisy = standardise(clean + 0.3 * clean.std() * rng.normal(size=30))
    prior = (-5.0, 1.0)
    free = fit(X, noisy).noise
    held = GPModel(noise_prior=prior).fit(X, noisy, np.random.default_rng(0)).noise
    quiet = GPModel(noise_prior=prior).fit(X, standardise(clean), np.random.default_rng(0)).noise
    assert held < free
    assert held > 10 * quiet  # the noise is still learned, not fixed at the prior's centre
    assert held > math.exp(prior[0])


# Data sets on which a single cold start from the prior's long length scales used to
# end in the flat "all noise" optimum (signal at its lower bound, noise at its upper).
DEGENERATE = [
    pytest.param(f1, 1, 30, 2, id="1d-n30"),
    pytest.param(f2, 2, 10, 0, id="2d-n10"),
    pytest.param(f3, 3, 40, 2, id="3d-n40-a"),
    pytest.param(f3, 3, 40, 3, id="3d-n40-b"),
]


@pytest.mark.parametrize(("f", "d", "n", "seed"), DEGENERATE)
def test_fit_finds_the_likelihood_optimum_on_noise_free_data(
    f: object, d: int, n: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = standardise(f(X))  # type: ignore[operator]
    gp = fit(X, y)
    diff2 = diffs(X)
    bounds = [LOG_LS_BOUNDS] * d + [LOG_SIGNAL_BOUNDS, LOG_NOISE_BOUNDS]
    plain = minimize(
        _nll,
        np.r_[np.zeros(d), 0.0, math.log(1e-3)],
        args=(diff2, y),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
    )
    assert _nll(gp.theta_, diff2, y)[0] <= plain.fun + 1.0  # type: ignore[arg-type]
    assert gp.noise < 1e-2


def test_a_noisier_observation_pulls_the_posterior_less() -> None:
    """With its noise scaled by 9 (a run a ninth as long), an outlier moves the mean less."""
    X = np.linspace(0, 1, 9)[:, None]
    y = np.zeros(9)
    y[4] = 2.0  # one outlying measurement in the middle
    theta = np.array([math.log(0.3), 0.0, math.log(0.1)])
    rng = np.random.default_rng(0)
    full = GPModel().fit(X, y, rng, theta0=theta, optimise=False)
    scale = np.ones(9)
    scale[4] = 9.0
    short = GPModel().fit(X, y, rng, theta0=theta, optimise=False, noise_scale=scale)
    at = X[4:5]
    assert 0.0 < short.predict(at)[0][0] < full.predict(at)[0][0] - 0.3
    assert short.predict(at)[1][0] > full.predict(at)[1][0]


@pytest.mark.parametrize("scale", [np.ones(3), np.array([1.0, 0.0, 1.0, 1.0]), -np.ones(4)])
def test_noise_scale_needs_one_positive_value_per_observation(scale: np.ndarray) -> None:
    X = np.random.default_rng(0).random((4, 2))
    with pytest.raises(ValueError, match="one positive value per observation"):
        fit(X, standardise(f2(X)), noise_scale=scale)


def test_warm_start_gives_about_the_same_fit() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((20, 1))  # 20 is not a power of two: a warm start runs alone
    y = standardise(f1(X))
    cold = fit(X, y)
    warm = fit(X, y, theta0=cold.theta_)
    np.testing.assert_allclose(warm.theta_, cold.theta_, atol=0.1)  # type: ignore[arg-type]
    Xq = np.linspace(0, 1, 25)[:, None]
    np.testing.assert_allclose(warm.predict(Xq)[0], cold.predict(Xq)[0], atol=1e-2)
    # without optimising, the given hyperparameters are used as they are
    fixed = fit(X, y, theta0=cold.theta_, optimise=False)
    assert np.array_equal(fixed.theta_, cold.theta_)  # type: ignore[arg-type]
    np.testing.assert_allclose(fixed.predict(Xq)[0], cold.predict(Xq)[0], atol=1e-9)


def test_theta0_of_the_wrong_length_is_ignored() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((20, 2))
    y = standardise(f2(X))
    gp = fit(X, y, theta0=np.zeros(7), optimise=False)  # falls back to optimising
    assert gp.theta_ is not None and len(gp.theta_) == 4
    assert not np.array_equal(gp.theta_, np.zeros(4))


def test_default_theta_is_inside_the_bounds() -> None:
    for d in (1, 4, 20):
        theta = GPModel.default_theta(d)
        assert theta.shape == (d + 2,)
        assert np.all(theta[:d] == theta[0])  # no feature favoured a priori
        assert LOG_LS_BOUNDS[0] < theta[0] < LOG_LS_BOUNDS[1]
        assert LOG_SIGNAL_BOUNDS[0] < theta[d] < LOG_SIGNAL_BOUNDS[1]
        assert LOG_NOISE_BOUNDS[0] < theta[d + 1] < LOG_NOISE_BOUNDS[1]


# -- subsampling -------------------------------------------------------------------


def test_subsample_keeps_everything_under_the_limit() -> None:
    y = np.random.default_rng(0).random(30)
    assert np.array_equal(subsample(y, 30, np.random.default_rng(0)), np.arange(30))
    assert np.array_equal(subsample(y, 100, np.random.default_rng(0)), np.arange(30))


@pytest.mark.parametrize(("n", "limit"), [(50, 20), (101, 33), (1000, 300)])
def test_subsample_keeps_the_best_half_and_respects_the_limit(n: int, limit: int) -> None:
    y = np.random.default_rng(n).normal(size=n)
    idx = subsample(y, limit, np.random.default_rng(0))
    assert len(idx) == limit
    assert len(set(idx.tolist())) == limit
    assert np.all(np.diff(idx) > 0)  # sorted, distinct
    assert idx.min() >= 0 and idx.max() < n
    best = set(np.argsort(y)[: limit // 2].tolist())
    assert best <= set(idx.tolist())
    # the rest is a random share, not simply the next best
    rest = sorted(set(idx.tolist()) - best)
    assert max(y[rest]) > np.sort(y)[limit]


def test_subsample_draws_the_rest_at_random() -> None:
    y = np.arange(200.0)
    a = subsample(y, 40, np.random.default_rng(0))
    b = subsample(y, 40, np.random.default_rng(1))
    assert np.array_equal(a[:20], np.arange(20)) and np.array_equal(b[:20], np.arange(20))
    assert not np.array_equal(a, b)


def test_fit_conditions_on_at_most_max_points_with_the_best_among_them() -> None:
    rng = np.random.default_rng(2)
    X = rng.random((80, 2))
    y = standardise(f2(X))
    gp = GPModel(max_fit=30, max_points=40).fit(X, y, rng)
    assert gp.X_ is not None and len(gp.X_) == 40
    kept = {tuple(row) for row in gp.X_}
    for i in np.argsort(y)[:20]:
        assert tuple(X[i]) in kept
    mean, _ = gp.predict(X[np.argsort(y)[:5]])
    assert np.all(np.isfinite(mean))


# -- awkward data -------------------------------------------------------------------


def test_duplicate_rows_do_not_crash() -> None:
    rng = np.random.default_rng(3)
    X = rng.random((8, 2))
    X = np.vstack([X, X, X[:2]])  # every row twice, two of them three times
    y = standardise(f2(X) + 0.05 * rng.normal(size=len(X)))  # repeats disagree a little
    gp = fit(X, y)
    mean, std = gp.predict(rng.random((20, 2)))
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std))
    assert np.all(std > 0)
    # identical rows with identical losses as well
    same = np.vstack([X[:5]] * 4)
    gp = fit(same, standardise(np.tile(f2(X[:5]), 4)))
    assert np.all(np.isfinite(gp.predict(same)[0]))

"""Gaussian-process Bayesian optimisation: EI, PI or UCB over a mixed, constrained space.

The model (``_gp_model``) is a Matern 5/2 GP with one length scale per
feature and a learned white-noise term, so measurement noise is estimated
rather than interpolated (Snoek et al., NeurIPS 2012). Features come from the
space: numeric knobs scaled (log where the spec says), integers snapped,
enums one-hot, special values as indicators. Losses go through a power
transform first (as HEBO does), which tames heavy tails such as a failed
config's penalty or a 10x throughput collapse.

Failures teach twice: they enter the regression as a penalty worse than the
worst success, and a kernel-weighted failure rate around each candidate
discounts its acquisition, so the search steers clear of regions that break
the system.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autotune.optimizers._base import Optimizer, failure_penalty
from autotune.optimizers._gp_model import GPModel, _matern, _sq_dists
from autotune.optimizers._search import Score, maximise
from autotune.optimizers.lhs import lhs_design
from autotune.space import Space
from autotune.spec import Config

ACQUISITIONS = ("ei", "pi", "ucb")

SAFETY_KAPPA = 1.0
"""Under a safety floor (``plan_safety``) a candidate is kept only if its upper
bound, posterior mean plus this many standard deviations, is inside the floor:
about 84% sure, one-sided, that it does not fall past it (SafeOpt's rule,
Sui et al., ICML 2015, with a fixed beta). Fixed before measuring, not tuned."""

SAFE_STEP = 0.15
"""A GP smooths over a cliff it has not seen (``commit_delay`` past a few ms), so
under a floor the search also stays near what it has seen: a candidate must be
within this share of every numeric knob's scaled range of a config that stayed
above the floor, and nearer to one (in the GP's length scales, so the knobs that
matter count) than to any config that fell below it or failed. The safe set
grows from the baseline outwards, as in SafeOpt."""

SAFE_NEIGHBOURS = 100
"""The most observations of each kind the safe-set rule compares against: the
best safe ones and the latest unsafe ones, so a proposal stays fast at 5,000."""


def expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.01
) -> np.ndarray:
    """EI for minimisation (Jones et al., 1998)."""
    from scipy.stats import norm

    std = np.maximum(std, 1e-12)
    z = (best - mean - xi) / std
    return np.asarray((best - mean - xi) * norm.cdf(z) + std * norm.pdf(z))


def probability_of_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.01
) -> np.ndarray:
    from scipy.stats import norm

    return np.asarray(norm.cdf((best - mean - xi) / np.maximum(std, 1e-12)))


def lower_confidence_bound(mean: np.ndarray, std: np.ndarray, beta: float = 1.96) -> np.ndarray:
    """Negated, so that higher is better like the others."""
    return np.asarray(-(mean - beta * std))


_LAMBDAS = np.linspace(-2.0, 3.0, 51)


def _yeo_johnson(z: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Yeo-Johnson for every lambda at once: shape (len(lam), len(z))."""
    lam = lam[:, None]
    pos = z >= 0
    out = np.empty((len(lam), len(z)))
    with np.errstate(all="ignore"):
        a = np.where(np.abs(lam) < 1e-6, np.log1p(np.abs(z)), ((np.abs(z) + 1) ** lam - 1) / lam)
        l2 = 2 - lam
        b = np.where(np.abs(l2) < 1e-6, -np.log1p(np.abs(z)), -(((np.abs(z) + 1) ** l2) - 1) / l2)
    out[:] = np.where(pos, a, b)
    return out


LossMap = Callable[[np.ndarray], np.ndarray]
"""Raw losses → the model's units, as one fit of ``fit_transform`` maps them."""


def transform_losses(y: np.ndarray) -> np.ndarray:
    """Standardise, Yeo-Johnson with lambda by maximum likelihood on a grid, standardise.

    Monotone, so the best stays the best; heavy tails (a failure's penalty, a
    throughput collapse) stop dominating the fit, as in HEBO (Cowen-Rivers et
    al., JAIR 2022). scipy's version costs ~50 ms per call; this one ~0.2 ms.
    """
    return fit_transform(y)[0]


def fit_transform(y: np.ndarray) -> tuple[np.ndarray, LossMap]:
    """``transform_losses`` and the map it fitted, to carry other losses (a safety
    floor) into the same units."""
    y = np.asarray(y, dtype=float)
    spread = y.std()
    mean = float(y.mean()) if len(y) else 0.0

    if spread == 0:

        def flat(v: np.ndarray) -> np.ndarray:
            v = np.asarray(v, dtype=float)
            return np.asarray(np.where(v > mean, np.inf, np.where(v < mean, -np.inf, 0.0)))

        return np.zeros_like(y), flat

    def standard(v: np.ndarray) -> np.ndarray:
        return np.asarray((np.asarray(v, dtype=float) - mean) / spread)

    z = standard(y)
    if len(y) < 3:
        return np.asarray(z), standard
    T = _yeo_johnson(z, _LAMBDAS)
    var = T.var(axis=1)
    ok = np.isfinite(var) & (var > 0)
    if not ok.any():
        return np.asarray(z), standard
    # Profile log-likelihood of a normal fit plus the Jacobian of the transform.
    llf = np.full(len(_LAMBDAS), -np.inf)
    jac = (_LAMBDAS[ok] - 1)[:, None] * (np.sign(z) * np.log1p(np.abs(z)))[None, :]
    llf[ok] = -0.5 * len(z) * np.log(var[ok]) + jac.sum(1)
    best = int(np.argmax(llf))
    t = T[best]
    t_mean, t_std = float(t.mean()), float(t.std())
    lam = _LAMBDAS[best : best + 1]

    def mapped(v: np.ndarray) -> np.ndarray:
        return np.asarray((_yeo_johnson(standard(v), lam)[0] - t_mean) / t_std)

    return np.asarray((t - t_mean) / t_std), mapped


_BLAS: Any = None


def one_blas_thread() -> Any:
    """threadpoolctl's limit to one thread, with its library scan done once per process.

    ``threadpool_limits(1)`` rescans the loaded libraries on every call: about
    4 ms, a tenth of a suggestion at 100 observations.
    """
    global _BLAS
    if _BLAS is None:
        # Load the BLAS builds the model uses before the scan, so it finds them.
        import scipy.linalg
        import scipy.optimize  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1)


class GPOptimizer(Optimizer):
    name = "gp"
    noise_prior: tuple[float, float] | None = None
    # Give a run at fidelity φ 1/φ times a full run's noise variance (a mean over a
    # shorter run). Off: a candidate for auto, measured before it is shipped.
    fidelity_noise: bool = False

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        n_init: int | None = None,
        n_candidates: int = 1000,
        n_local: int = 300,
        acquisition: str = "ei",
        xi: float = 0.01,
        beta: float = 1.96,
    ) -> None:
        super().__init__(space, seed)
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"unknown acquisition {acquisition!r}; choose one of {ACQUISITIONS}")
        self.n_init = n_init if n_init is not None else min(10, max(3, len(space) // 2 + 1))
        self.n_candidates = n_candidates
        self.n_local = n_local
        self.acquisition = acquisition
        self.xi = xi
        self.beta = beta
        self.model_: GPModel | None = None
        self._theta: np.ndarray | None = None
        self._rows: list[np.ndarray] = []  # encoded configs, one per tell
        self._loss_map: LossMap | None = None  # the last fit's raw → model units
        self._floor_model: float | None = None  # the safety floor in model units
        self._safe_rows: np.ndarray | None = None  # numeric features of configs above the floor
        self._unsafe_rows: np.ndarray | None = None  # ... and of those below it, or failed
        self._safe_scales: np.ndarray | None = None  # the GP's length scales of those features
        self._noise_scale: np.ndarray | None = None  # the last training rows' noise scales

    # -- state ------------------------------------------------------------------
    def tell(self, config: Config, loss: float | None, fidelity: float = 1.0) -> None:
        super().tell(config, loss, fidelity)
        self._rows.append(self.space.encode(config))

    def state_dict(self) -> dict[str, Any]:
        return {"theta": None if self._theta is None else [float(t) for t in self._theta]}

    def load_state(self, state: dict[str, Any]) -> None:
        theta = state.get("theta")
        if isinstance(theta, list) and len(theta) == self.space.n_features + 2:
            self._theta = np.asarray(theta, dtype=float)

    # -- model ------------------------------------------------------------------
    def _training_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Features, transformed losses (failures as a penalty) and the failure mask."""
        return self._data_of(range(len(self.history_)))

    def _data_of(self, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``_training_data`` for some of the told observations, by index."""
        losses = [self.history_[i][1] for i in rows]
        ok = [loss for loss in losses if loss is not None]
        if len(ok) < 2:
            return None
        penalty = failure_penalty(ok)
        raw = np.array([penalty if loss is None else loss for loss in losses])
        failed = np.array([loss is None for loss in losses])
        y, self._loss_map = fit_transform(raw)
        self._noise_scale = (
            np.array([1.0 / max(self.observations_[i][2], 1e-3) for i in rows])
            if self.fidelity_noise
            else None
        )
        return np.vstack([self._rows[i] for i in rows]), y, failed

    def _fit(self, X: np.ndarray, y: np.ndarray) -> GPModel:
        model = GPModel(noise_prior=self.noise_prior).fit(
            X, y, self.rng, theta0=self._theta, noise_scale=self._scales(len(y))
        )
        self._theta = model.theta_
        return model

    def _condition(self, model: GPModel, X: np.ndarray, y: np.ndarray) -> GPModel:
        """The same hyperparameters on more data: kriging believer for pending configs."""
        return GPModel(noise_prior=self.noise_prior).fit(
            X, y, self.rng, theta0=model.theta_, optimise=False, noise_scale=self._scales(len(y))
        )

    def _scales(self, n: int) -> np.ndarray | None:
        """The training rows' noise scales, then 1 for configs believed at the model's mean."""
        scale = self._noise_scale
        if scale is None or len(scale) > n:
            return None
        return np.concatenate([scale, np.ones(n - len(scale))])

    def _failure_rate(self, model: GPModel, X: np.ndarray, failed: np.ndarray) -> Any:
        """A function giving each candidate's kernel-weighted share of failed neighbours."""
        if not failed.any():
            return None
        assert model.theta_ is not None
        ls = np.exp(model.theta_[:-2])
        prior = (failed.sum() + 0.5) / (len(failed) + 1.0)

        def rate(C: np.ndarray) -> np.ndarray:
            W = _matern(_sq_dists(C, X, ls))
            return np.asarray((W @ failed + 0.5 * prior) / (W.sum(1) + 0.5))

        return rate

    def _plan_floor(self, model: GPModel) -> None:
        """The floor in the last fit's units, and the observations the safe set grows from."""
        self._floor_model = self._safe_rows = self._unsafe_rows = None
        if self.floor is None or self._loss_map is None or not self._rows:
            return
        self._floor_model = float(self._loss_map(np.array([self.floor]))[0])
        cols = self.space.numeric_columns
        assert model.theta_ is not None
        self._safe_scales = np.exp(model.theta_[:-2])[cols]
        losses = [loss for _, loss in self.history_]
        safe = [i for i, loss in enumerate(losses) if loss is not None and loss <= self.floor]
        safe.sort(key=lambda i: losses[i] or 0.0)
        unsafe = [i for i, loss in enumerate(losses) if loss is None or loss > self.floor]
        self._safe_rows = np.array([self._rows[i][cols] for i in safe[:SAFE_NEIGHBOURS]])
        self._unsafe_rows = np.array([self._rows[i][cols] for i in unsafe[-SAFE_NEIGHBOURS:]])

    def _guard(
        self, C: np.ndarray, value: np.ndarray, mean: np.ndarray, std: np.ndarray
    ) -> np.ndarray:
        """Under a safety floor, sink the candidates that may fall past it below every
        safe one, the least risky first (if nothing is safe, the safest is chosen)."""
        if self._floor_model is None:
            return value
        upper = mean + SAFETY_KAPPA * std
        risky = upper > self._floor_model
        safe, unsafe = self._safe_rows, self._unsafe_rows
        if safe is not None and len(safe) and len(self.space.numeric_columns):
            N = C[:, self.space.numeric_columns]
            ls = self._safe_scales if self._safe_scales is not None else np.ones(N.shape[1])
            # Row by row, not as one (candidates, observations, knobs) array: memory stays
            # at the candidates' size however many observations there are.
            near = np.full(len(N), np.inf)  # L-inf steps to the nearest safe config
            to_safe = np.full(len(N), np.inf)  # ... in the GP's length scales
            for row in safe:
                step = np.abs(N - row)
                near = np.minimum(near, step.max(axis=1))
                to_safe = np.minimum(to_safe, (step / ls).max(axis=1))
            risky |= near > SAFE_STEP
            if unsafe is not None and len(unsafe):
                to_bad = np.full(len(N), np.inf)
                for row in unsafe:
                    to_bad = np.minimum(to_bad, (np.abs(N - row) / ls).max(axis=1))
                risky |= to_bad <= to_safe
            upper = upper + near  # among risky ones, the nearest to the safe set first
        return np.asarray(np.where(risky, -1e6 - upper, value))

    def _scores(self, model: GPModel, best: float, fail_rate: Any) -> dict[str, Score]:
        cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

        def predict(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # Every acquisition scores the same candidate array: predict once.
            hit = cache.get(id(C))
            if hit is None or hit[0] is not C:
                cache.clear()
                hit = cache[id(C)] = (C, *model.predict(C))
            return hit[1], hit[2]

        def wrap(kind: str) -> Score:
            def score(C: np.ndarray) -> np.ndarray:
                mean, std = predict(C)
                if kind == "ei":
                    value = expected_improvement(mean, std, best, self.xi)
                elif kind == "pi":
                    value = probability_of_improvement(mean, std, best, self.xi)
                else:
                    value = lower_confidence_bound(mean, std, self.beta)
                if fail_rate is not None:
                    feasible = 1.0 - fail_rate(C)
                    if kind == "ucb":
                        # LCB can be negative: push likely failures below every safe point.
                        value = np.where(feasible < 0.5, value - 1e6, value)
                    else:
                        value = value * feasible
                return self._guard(C, value, mean, std)

            return score

        return {kind: wrap(kind) for kind in ACQUISITIONS}

    # -- asking -----------------------------------------------------------------
    def ask(self, n: int = 1, pending: Sequence[Config] = ()) -> list[Config]:
        # One BLAS thread: on small hosts threads fight over cores and fits get slower.
        with one_blas_thread():
            return self._ask(n, pending)

    def _ask(self, n: int, pending: Sequence[Config]) -> list[Config]:
        safe = self.floor is not None
        design = lhs_design(self.space, self.n_init, self.seed, safe, self.safe_centre)
        started = len(self.history_) + len(pending)
        if started < self.n_init:
            # The baseline takes the first slot; the design fills the rest, and
            # the model takes over once the design is used up.
            k = min(n, self.n_init - started)
            first = self._fresh(design[started:] + design, k, exclude=pending)
            if k == n:
                return first
            return first + self._ask(n - k, pending=[*pending, *first])
        data = self._training_data()
        if data is None:
            return self._fresh([], n, exclude=pending)
        X, y, failed = data
        model = self._fit(X, y)
        self.model_ = model
        self._plan_floor(model)
        fail_rate = self._failure_rate(model, X, failed)
        best = float(y[~failed].min()) if (~failed).any() else float(y.min())
        anchors = self._anchors()
        picked: list[Config] = []
        if pending:
            P = self.space.encode_many(pending)
            X, y = np.vstack([X, P]), np.append(y, model.predict(P)[0])
            model = self._condition(model, X, y)
        for _ in range(n):
            exclude = self.seen() | {self.space.key(c) for c in [*pending, *picked]}
            candidate = self._choose(model, best, fail_rate, anchors, exclude)
            if candidate is None:
                candidate = self._fresh([], 1, exclude=[*pending, *picked])[0]
            picked.append(candidate)
            if len(picked) < n:
                # Kriging believer: pretend the model's mean came true, so the next
                # pick in the same batch goes elsewhere (Ginsbourger et al., 2010).
                x = self.space.encode(candidate)[None, :]
                X, y = np.vstack([X, x]), np.append(y, model.predict(x)[0])
                model = self._condition(model, X, y)
        return picked

    def _anchors(self, k: int = 5) -> list[Config]:
        ranked = sorted(
            ((c, loss) for c, loss in self.history_ if loss is not None), key=lambda t: t[1]
        )
        return [c for c, _ in ranked[:k]]

    def _choose(
        self,
        model: GPModel,
        best: float,
        fail_rate: Any,
        anchors: list[Config],
        exclude: set[tuple[object, ...]],
    ) -> Config | None:
        score = self._scores(model, best, fail_rate)[self.acquisition]
        return maximise(
            self.space,
            [score],
            self.rng,
            anchors,
            exclude,
            n_random=self.n_candidates,
            n_local=self.n_local,
        )[0]

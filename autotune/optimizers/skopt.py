"""scikit-optimize behind the ask/tell seam, as reference baselines.

``skopt-gp`` and ``skopt-rf`` run ``skopt.Optimizer`` (GP or random-forest
surrogate) so benchmarks can compare autotune's own optimisers with a widely
used library. GBRT is not offered: it breaks on numpy 2.4.

Each knob becomes one skopt dimension over [min, max] (log-uniform prior for
log-scale knobs, categories for enums and booleans). skopt has no notion of
special values: a special value inside the bounds is just a number, and one
outside them (``-1`` meaning "auto", say) cannot be represented, so configs
holding one are told to skopt at the nearest bound and skopt never proposes it.

Cross-knob constraints reach skopt as its ``space_constraint``, so it scores
its acquisition on valid random points only; a proposal that still breaks one
(after rounding) is told as a failure and skopt is asked again. Failed trials
are told as a penalty worse than the worst result, as for autotune's GP.

skopt refits its model on every ``tell``. Here ``tell`` only records, and each
``ask`` builds a fresh ``skopt.Optimizer`` from the history and fits it once,
so a scheduler replaying thousands of finished trials pays nothing per trial.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, ClassVar

import numpy as np

from autotune.optimizers._base import Optimizer, failure_penalty
from autotune.optimizers._gp_model import subsample
from autotune.optimizers.forest import design_ask
from autotune.space import Space
from autotune.spec import Config, Knob, Value


def _integer_bounds(knob: Knob) -> tuple[int, int]:
    assert knob.min is not None and knob.max is not None
    return math.ceil(knob.min), math.floor(knob.max)


def skopt_dimensions(space: Space) -> list[Any]:
    """One skopt dimension per knob, named after it, in ``space.names`` order.

    A knob whose bounds leave a single value becomes a one-category dimension,
    since skopt's ``Integer`` and ``Real`` need ``low < high``. Numeric
    dimensions use ``transform="normalize"``: with skopt 0.10.2's default
    ("identity") a log-uniform ``Integer`` transforms to log10 but reports its
    raw bounds, so the forest's proposals are clipped to the upper bound.
    """
    from skopt.space import Categorical, Integer, Real

    dims: list[Any] = []
    for knob in space.knobs:
        if knob.type == "enum":
            dims.append(Categorical(list(knob.values), name=knob.name))
        elif knob.type == "bool":
            dims.append(Categorical([False, True], name=knob.name))
        else:
            assert knob.min is not None and knob.max is not None
            prior = "log-uniform" if knob.scale == "log" else "uniform"
            if knob.type == "integer":
                lo, hi = _integer_bounds(knob)
                if lo >= hi:
                    dims.append(Categorical([lo], name=knob.name))
                else:
                    dims.append(Integer(lo, hi, prior=prior, transform="normalize", name=knob.name))
            elif knob.min >= knob.max:
                dims.append(Categorical([float(knob.min)], name=knob.name))
            else:
                dims.append(
                    Real(
                        float(knob.min),
                        float(knob.max),
                        prior=prior,
                        transform="normalize",
                        name=knob.name,
                    )
                )
    return dims


def from_skopt_point(space: Space, point: Sequence[Any]) -> Config:
    """The config for an skopt point: native Python values, each passed through
    its knob's ``validate``; integers rounded, reals rounded to four significant
    digits as ``Space`` does, so what is proposed is exactly what gets applied."""
    config: Config = {}
    for knob, raw in zip(space.knobs, point, strict=True):
        value: Value
        if knob.type == "enum":
            value = str(raw)
        elif knob.type == "bool":
            value = bool(raw)
        elif knob.type == "integer":
            lo, hi = _integer_bounds(knob)
            value = int(min(max(round(float(raw)), lo), max(lo, hi)))
        else:
            assert knob.min is not None and knob.max is not None
            value = min(max(float(f"{float(raw):.4g}"), knob.min), knob.max)
        config[knob.name] = knob.validate(value)
    return config


def to_skopt_point(space: Space, config: Config) -> list[Value]:
    """The skopt point for a config (e.g. the baseline, or a pending trial).

    skopt cannot represent values outside a dimension's bounds, so a special
    value outside [min, max] is clamped to the nearest bound: the model learns
    that trial's result as if it ran at the bound.
    """
    point: list[Value] = []
    for knob in space.knobs:
        value = config[knob.name]
        if knob.type == "enum":
            point.append(str(value))
        elif knob.type == "bool":
            point.append(bool(value))
        elif knob.type == "integer":
            lo, hi = _integer_bounds(knob)
            point.append(int(min(max(round(float(value)), lo), max(lo, hi))))
        else:
            assert knob.min is not None and knob.max is not None
            point.append(float(min(max(float(value), knob.min), knob.max)))
    return point


def _native(value: Any) -> Value:
    """numpy scalars from skopt as plain Python values (for keys and JSON)."""
    return value.item() if isinstance(value, np.generic) else value  # type: ignore[no-any-return]


class _SkoptOptimizer(Optimizer):
    """A fresh ``skopt.Optimizer`` per ask, fitted once on the (capped) history."""

    base_estimator: ClassVar[str]
    default_acq_func: ClassVar[str]
    default_max_points: ClassVar[int]

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        n_init: int | None = None,
        acq_func: str | None = None,
        n_candidates: int = 2000,
        max_points: int | None = None,
        max_retries: int = 3,
    ) -> None:
        super().__init__(space, seed)
        self.n_init = n_init if n_init is not None else min(10, max(3, len(space) // 2 + 1))
        self.acq_func = acq_func or self.default_acq_func
        self.n_candidates = n_candidates  # random points skopt scores the acquisition on
        self.max_points = max_points or self.default_max_points
        self.max_retries = max_retries
        # skopt proposals that broke a constraint (rare, see _constraint): told as
        # failures at every later ask too, although they are not trials.
        self.rejected_: list[list[Value]] = []
        self._points: list[list[Value]] = []  # to_skopt_point of each told config

    def tell(self, config: Config, loss: float | None, fidelity: float = 1.0) -> None:
        point = to_skopt_point(self.space, config)
        super().tell(config, loss, fidelity)
        self._points.append(point)

    def state_dict(self) -> dict[str, Any]:
        return {"rejected": [list(p) for p in self.rejected_]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rejected_ = [list(p) for p in state.get("rejected", [])]

    def ask(self, n: int = 1, pending: Sequence[Config] = ()) -> list[Config]:
        return design_ask(self, n, pending, self.n_init, self._ask_model)

    def _estimator(self) -> Any:
        """skopt's ``base_estimator``: a name skopt cooks, or a regressor."""
        return self.base_estimator

    def _constraint(self, told: set[tuple[Value, ...]]) -> Callable[[Sequence[Any]], bool] | None:
        """skopt's ``space_constraint``: skopt scores its acquisition only on random
        points that pass it, so it proposes valid configs (a penalty alone cannot
        teach a forest a diagonal boundary such as min_wal_size <= max_wal_size).
        skopt checks every told point against it too, hence the pass for those."""
        names, space = self.space.names, self.space

        def valid(point: Sequence[Any]) -> bool:
            key = tuple(_native(v) for v in point)
            return key in told or space.is_valid(dict(zip(names, key, strict=True)))

        return valid

    def _skopt(self, told: set[tuple[Value, ...]]) -> Any:
        from skopt import Optimizer as SkOptimizer

        return SkOptimizer(
            skopt_dimensions(self.space),
            base_estimator=self._estimator(),
            n_initial_points=0,  # the design is autotune's Latin hypercube
            acq_func=self.acq_func,
            # Sampling, not L-BFGS: restarts cost seconds and ignore integer steps anyway.
            acq_optimizer="sampling",
            acq_optimizer_kwargs={"n_points": self.n_candidates},
            space_constraint=self._constraint(told),
            random_state=int(self.rng.integers(2**31)),
        )

    def _ask_model(self, n: int, pending: Sequence[Config]) -> list[Config]:
        from threadpoolctl import threadpool_limits

        ok = [loss for _, loss in self.history_ if loss is not None]
        if len(ok) < 2:
            return self._fresh([], n, exclude=pending)
        penalty = failure_penalty(ok)
        points = self._points + self.rejected_
        y = np.array(
            [penalty if loss is None else loss for _, loss in self.history_]
            + [penalty] * len(self.rejected_)
        )
        keep = subsample(y, self.max_points, self.rng)  # the best half and a random share
        # Constant liar (cl_min, as skopt's own batches): configs still being
        # measured count as the best result so far, so proposals spread away.
        lie = float(min(ok))
        X = [points[i] for i in keep] + [to_skopt_point(self.space, c) for c in pending]
        Y = [float(y[i]) for i in keep] + [lie] * len(pending)

        taken = self.seen() | {self.space.key(c) for c in pending}
        picked: list[Config] = []
        # One BLAS thread: on small hosts threads fight over cores (see gp.py).
        # RuntimeError: skopt drew too few valid random points to score; go random.
        with warnings.catch_warnings(), threadpool_limits(1), suppress(RuntimeError):
            warnings.simplefilter("ignore")  # duplicate-point and convergence chatter
            self._propose(n, X, Y, taken, picked, penalty, lie)
        if len(picked) == n:
            return picked
        return picked + self._fresh([], n - len(picked), exclude=[*pending, *picked])

    def _propose(
        self,
        n: int,
        X: list[list[Value]],
        Y: list[float],
        taken: set[tuple[object, ...]],
        picked: list[Config],
        penalty: float,
        lie: float,
    ) -> None:
        """Fill ``picked`` with up to ``n`` new valid configs from skopt.

        A proposal that breaks a constraint anyway (rounding can push one over)
        is told as a failure and skopt is asked again, ``max_retries`` times.
        """
        told = {tuple(x) for x in X}
        opt = self._skopt(told)
        opt.tell(X, Y)
        for _ in range(self.max_retries + 1):
            need = n - len(picked)
            asked = opt.ask(n_points=need) if need > 1 else [opt.ask()]
            told_x, told_y = [], []
            for raw in asked:
                point = [_native(v) for v in raw]
                told_x.append(point)
                config = from_skopt_point(self.space, point)
                if not self.space.is_valid(config):
                    self.rejected_.append(point)
                    told_y.append(penalty)
                    continue
                told_y.append(lie)  # constant liar for the ones picked, too
                key = self.space.key(config)
                if key not in taken and len(picked) < n:
                    taken.add(key)
                    picked.append(config)
            if len(picked) == n:
                return
            told.update(tuple(x) for x in told_x)
            opt.tell(told_x, told_y)


class SkoptGP(_SkoptOptimizer):
    """skopt's GP (Matern 5/2, learned noise) with the gp_hedge acquisition portfolio.

    The training set is capped (the best half plus a random sample) because
    skopt's GP fit grows cubically and takes seconds beyond a few hundred points.
    """

    name = "skopt-gp"
    base_estimator = "GP"
    default_acq_func = "gp_hedge"
    default_max_points = 100


class SkoptForest(_SkoptOptimizer):
    """skopt's random forest (``base_estimator="RF"``: min_samples_leaf=3, spread
    from the trees) with expected improvement.

    skopt cooks "RF" with 100 trees, which makes every ask take about half a
    second; ``n_trees`` trees of the same kind (default 50) halve that.
    """

    name = "skopt-rf"
    base_estimator = "RF"
    default_acq_func = "EI"
    default_max_points = 500

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        n_init: int | None = None,
        acq_func: str | None = None,
        n_candidates: int = 2000,
        max_points: int | None = None,
        max_retries: int = 3,
        n_trees: int = 50,
    ) -> None:
        super().__init__(space, seed, n_init, acq_func, n_candidates, max_points, max_retries)
        self.n_trees = n_trees

    def _estimator(self) -> Any:
        from skopt.learning import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=self.n_trees,
            min_samples_leaf=3,
            n_jobs=1,
            random_state=int(self.rng.integers(2**31)),
        )

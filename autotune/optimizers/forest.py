"""SMAC-style Bayesian optimisation with a random-forest surrogate.

A random forest copes with what a GP finds hard in DB tuning: enums, special
values, conditional effects, cliffs where a config fails, and thousands of
observations (Hutter et al., LION 2011; Zhang et al., VLDB 2022 found SMAC the
most reliable optimiser for database knobs). The model is scikit-learn's
RandomForestRegressor on the encoded space; its predictive mean and spread come
from the individual trees. Expected improvement is maximised over random
configs plus a local search from the best observed ones, and a share of the
suggestions is purely random so the model can never trap the search.

Suggestion latency matters for a tuner that proposes while agents wait, so
candidates live as unit-coordinate arrays (``Space.sample_units`` and friends)
and only the winners become configs and meet the constraint checker.
Encodings are cached at ``tell`` time and the training set is capped, so
asking stays cheap at thousands of observations.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from autotune.optimizers._base import Optimizer, failure_penalty
from autotune.optimizers._gp_model import subsample
from autotune.optimizers.gp import expected_improvement, transform_losses
from autotune.optimizers.lhs import lhs_design
from autotune.space import Space
from autotune.spec import Config

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestRegressor


# -- helpers shared with the scikit-optimize adapters ------------------------------


def design_ask(
    opt: Optimizer,
    n: int,
    pending: Sequence[Config],
    n_init: int,
    model_ask: Callable[[int, Sequence[Config]], list[Config]],
) -> list[Config]:
    """GPOptimizer's design phase: the baseline takes the first slot, a Latin
    hypercube fills the next ``n_init`` and ``model_ask`` takes over after."""
    started = len(opt.history_) + len(pending)
    if started >= n_init:
        return model_ask(n, pending)
    design = lhs_design(opt.space, n_init, opt.seed)
    k = min(n, n_init - started)
    picked = opt._fresh(design[started:] + design, k, exclude=pending)
    if k == n:
        return picked
    return picked + model_ask(n - k, [*pending, *picked])


# -- the optimiser --------------------------------------------------------------------


class ForestOptimizer(Optimizer):
    """SMAC-style BO: random-forest surrogate, EI, random plus local-search candidates."""

    name = "rf"

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        n_init: int | None = None,
        n_trees: int = 10,
        n_candidates: int = 500,
        n_starts: int = 5,
        n_neighbours: int = 30,
        local_steps: int = 5,
        random_fraction: float = 0.2,
        max_train: int = 1500,
        max_tree_samples: int = 400,
        xi: float = 0.01,
    ) -> None:
        super().__init__(space, seed)
        if not 0.0 <= random_fraction <= 1.0:
            raise ValueError(f"random_fraction must be in [0, 1], got {random_fraction}")
        self.n_init = n_init if n_init is not None else min(10, max(3, len(space) // 2 + 1))
        self.n_trees = n_trees
        self.n_candidates = n_candidates
        self.n_starts = n_starts
        self.n_neighbours = n_neighbours
        self.local_steps = local_steps
        self.random_fraction = random_fraction
        self.max_train = max_train
        self.max_tree_samples = max_tree_samples
        self.xi = xi
        self.model_: RandomForestRegressor | None = None
        self._rows: list[np.ndarray] = []  # space.encode of each told config, in order

    def tell(self, config: Config, loss: float | None, fidelity: float = 1.0) -> None:
        # Encode once here: replaying thousands of trials must not re-encode at every ask.
        row = self.space.encode(config)
        super().tell(config, loss, fidelity)
        self._rows.append(row)

    def ask(self, n: int = 1, pending: Sequence[Config] = ()) -> list[Config]:
        return design_ask(self, n, pending, self.n_init, self._ask_model)

    # -- model ----------------------------------------------------------------------
    def _training_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        ok = [loss for _, loss in self.history_ if loss is not None]
        if len(ok) < 2:
            return None
        penalty = failure_penalty(ok)
        y = np.array([penalty if loss is None else loss for _, loss in self.history_])
        keep = subsample(y, self.max_train, self.rng)  # the best half and a random share
        X = np.array([self._rows[i] for i in keep]).reshape(len(keep), self.space.n_features)
        return X, y[keep]

    def _fit(self, X: np.ndarray, y: np.ndarray) -> RandomForestRegressor:
        from sklearn.ensemble import RandomForestRegressor
        from threadpoolctl import threadpool_limits

        n = len(y)
        # SMAC's forest: bootstrapped trees, 5/6 of the features per split, and at
        # least 3 samples to split; each tree sees at most max_tree_samples rows.
        model = RandomForestRegressor(
            n_estimators=self.n_trees,
            max_features=5 / 6,
            min_samples_split=3,
            min_samples_leaf=1,
            bootstrap=True,
            max_samples=min(n, self.max_tree_samples),
            n_jobs=1,
            random_state=int(self.rng.integers(2**31)),
        )
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            model.fit(X, y)
        return model

    @staticmethod
    def _predict(model: RandomForestRegressor, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of the trees' predictions (SMAC's predictive distribution)."""
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        P = np.stack([tree.predict(X32, check_input=False) for tree in model.estimators_])
        # A floor keeps EI alive where every tree agrees, e.g. far from any data.
        return P.mean(axis=0), np.maximum(P.std(axis=0), 1e-2)

    # -- acquisition ------------------------------------------------------------------
    def _ask_model(self, n: int, pending: Sequence[Config]) -> list[Config]:
        # Interleaved random configs (SMAC): the search never depends on the model alone.
        random_slot = self.rng.random(n) < self.random_fraction
        data = self._training_data()
        if data is None or random_slot.all():
            return self._fresh([], n, exclude=pending)
        X, y = data
        # Yeo-Johnson as for the GP: a bad baseline, failure penalties and cliffs
        # would otherwise flatten everything the forest should resolve near the
        # optimum (plain standardising did clearly worse on synthetic problems).
        z = transform_losses(y)
        model = self._fit(X, z)
        self.model_ = model
        best = float(z.min())

        def ei_of(F: np.ndarray) -> np.ndarray:
            mean, std = self._predict(model, F)
            return expected_improvement(mean, std, best, self.xi)

        U, S, F, ei = self._candidates(ei_of)
        # One candidate per distinct encoding: small discrete spaces repeat a lot.
        rows = np.ascontiguousarray(F).view(np.dtype((np.void, F.itemsize * F.shape[1])))
        _, first = np.unique(rows.ravel(), return_index=True)
        U, S, F, ei = U[first], S[first], F[first], ei[first]

        taken = self.seen() | {self.space.key(c) for c in pending}
        # Batches spread out: EI shrinks near configs picked or still being measured.
        spread = np.ones(len(F))
        for config in pending:
            spread *= self._repulsion(F, self.space.encode(config))
        picked: list[Config] = []
        for slot in range(n):
            found = None if random_slot[slot] else self._best_fresh(U, S, ei * spread, taken)
            if found is None:
                found = self._fresh([], 1, exclude=[*pending, *picked])[0]
            picked.append(found)
            taken.add(self.space.key(found))
            spread *= self._repulsion(F, self.space.encode(found))
        return picked

    def _candidates(
        self, ei_of: Callable[[np.ndarray], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Random candidates plus every point a SMAC-style local search visited,
        as unit coordinates, special indices, features and EI."""
        space = self.space
        U, S = space.sample_units(self.rng, self.n_candidates)
        F = space.features_of_units(U, S)
        Us, Ss, Fs, eis = [U], [S], [F], [ei_of(F)]

        ok = sorted((loss, i) for i, (_, loss) in enumerate(self.history_) if loss is not None)
        ranked = [i for _, i in ok[: self.n_starts]]
        if not ranked or self.local_steps <= 0:
            return U, S, F, eis[0]
        starts = [space.units_of(self.history_[i][0]) for i in ranked]
        cur_U = np.array([u for u, _ in starts])
        cur_S = np.array([s for _, s in starts])
        cur_ei = ei_of(np.array([self._rows[i] for i in ranked]))
        active = np.ones(len(cur_U), dtype=bool)
        m = self.n_neighbours
        for _ in range(self.local_steps):
            idx = np.flatnonzero(active)
            if len(idx) == 0:
                break
            moves = [space.perturb_units(cur_U[i], cur_S[i], self.rng, m) for i in idx]
            NU = np.vstack([u for u, _ in moves])
            NS = np.vstack([s for _, s in moves])
            NF = space.features_of_units(NU, NS)
            nei = ei_of(NF)
            Us.append(NU)
            Ss.append(NS)
            Fs.append(NF)
            eis.append(nei)
            for j, start in enumerate(idx):
                block = slice(j * m, (j + 1) * m)
                moved = False
                # Climb to the best valid neighbour if it improves EI (SMAC's local search).
                for k in np.argsort(-nei[block])[:3]:
                    if nei[block][k] <= cur_ei[start]:
                        break
                    u, s = NU[block][k], NS[block][k]
                    if space.is_valid(space.config_of_units(u, s)):
                        cur_U[start], cur_S[start], cur_ei[start] = u, s, nei[block][k]
                        moved = True
                        break
                active[start] = moved
        return np.vstack(Us), np.vstack(Ss), np.vstack(Fs), np.concatenate(eis)

    def _best_fresh(
        self,
        U: np.ndarray,
        S: np.ndarray,
        score: np.ndarray,
        taken: set[tuple[object, ...]],
        max_checks: int = 200,
    ) -> Config | None:
        """The highest-scoring candidate that is valid and not yet tried or pending."""
        for i in np.argsort(-score, kind="stable")[:max_checks]:
            config = self.space.config_of_units(U[i], S[i])
            if self.space.key(config) not in taken and self.space.is_valid(config):
                return config
        return None

    def _repulsion(self, F: np.ndarray, x: np.ndarray) -> np.ndarray:
        """1 far from ``x``, near 0 close to it (a simple local penalisation,
        González et al., AISTATS 2016): cheaper than refitting a believer forest."""
        radius = 0.1 * math.sqrt(self.space.n_features)
        d2 = ((F - x) ** 2).sum(axis=1)
        return np.asarray(1.0 - np.exp(-d2 / radius**2))

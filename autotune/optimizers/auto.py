"""The default optimiser: a bandit over a portfolio of acquisition functions and models.

No single acquisition wins everywhere: EI is balanced, PI exploits, UCB
explores, and a random forest copes with the discontinuities that trip a GP.
GP-Hedge (Hoffman, Brochu & de Freitas, UAI 2011) lets each arm nominate a
config every round and picks one with probability proportional to
exp(eta * gain); an arm's gain grows by how good its past nominees look under
the refreshed model (minus the posterior mean), so arms are rewarded by the
improvement they would have brought, whether or not they were picked.

When wall time is the budget, the search starts with a screen in place of the
space-filling design: Hyperband's short runs (ASHA with rungs 1/9, 1/3, 1)
until ``screen`` configs beside the baseline have run at full length, as BOHB
does (Falkner et al., ICML 2018). For what the design would cost, the screen
takes a first look at three times as many configs, which matters most
where the space is wide and flat. The GP then models each config by its
longest run, short ones as they are: on the PostgreSQL sandbox a 2.2 s
pgbench run's median tps was within 4% of a 20 s run's, well inside its
noise (experiments/results/short_runs.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from autotune.optimizers._base import Suggestion
from autotune.optimizers._search import Score, maximise
from autotune.optimizers.gp import ACQUISITIONS, GPOptimizer
from autotune.optimizers.hyperband import HyperbandOptimizer
from autotune.space import Space

if TYPE_CHECKING:
    from autotune.optimizers.forest import ForestOptimizer
from autotune.spec import Config

ARMS = ("ei", "ucb")
"""The default portfolio. Measured at 30 evaluations, 8 seeds: with PI in it,
GP-Hedge's reward (the posterior mean at the nominee) favours the exploitative PI,
which then dominates and doubles the regret on Hartmann-6; the random-forest arm
("rf", available) helped on noisy Hartmann-6 but hurt on Branin and the PostgreSQL
surrogate, and costs a forest fit per suggestion."""


NOISE_PRIOR = (-5.0, 1.0)
"""Log-normal prior on the GP's noise variance (standardised units): median e^-5,
about 8% of the loss's spread as noise sd. At 30 evaluations a small sample's
likelihood often prefers "all noise", which blinds EI; BoTorch's
default prior has median e^-4. Measured on the benchmark's 7 problems (seeds
0-19 and 100-119 to choose, 200-229 held out; experiments/results/auto_variants.md):
no problem worse, tied-best 5, 7 and 7 of 7 against 4, 6 and 6 without it."""


SCREEN_TRIALS_PER_CONFIG = 13
"""With Hyperband's rungs (1/9, 1/3, 1) each config the screen carries to full
length takes about 13 trials (9 short, 3 at a third, 1 full) and costs 3 full
runs' time. So a screen of ``n_init // 3`` configs costs what the space-filling
design it replaces would. Measured on the benchmark's 7 problems at 30
evaluations (experiments/results/auto_variants.md, variants ``auto``,
``screen3`` and ``no-screen``): a fixed screen of 3 won Ackley-10 but cost the
2-D Branin its precision."""


class AutoOptimizer(GPOptimizer):
    name = "auto"

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        n_init: int | None = None,
        n_candidates: int = 1000,
        n_local: int = 300,
        eta: float = 1.0,
        arms: Sequence[str] = ARMS,
        noise_prior: tuple[float, float] | None = NOISE_PRIOR,
        screen: int | None = None,
    ) -> None:
        super().__init__(space, seed, n_init, n_candidates, n_local, acquisition="ei")
        self.noise_prior = noise_prior
        if screen is not None and screen < 0:
            raise ValueError(f"screen must be >= 0, not {screen}")
        # Configs the opening screen carries to full length; None: the design's cost.
        self.screen = max(1, self.n_init // 3) if screen is None else screen
        # Off until the tuner says short runs are priced by time (plan_budget).
        self.short_runs = False
        self._screened = False
        unknown = set(arms) - {*ACQUISITIONS, "rf"}
        if unknown or not arms:
            raise ValueError(f"unknown arms {sorted(unknown)}; choose from {[*ACQUISITIONS, 'rf']}")
        self.eta = eta
        self.arms: list[str] = list(arms)
        self._forest: ForestOptimizer | None = None
        if "rf" in self.arms:
            from autotune.optimizers.forest import ForestOptimizer

            self._forest = ForestOptimizer(space, seed)
        self.gains = np.zeros(len(self.arms))
        self.nominees: dict[str, Config] = {}
        self.last_arm: str | None = None
        self.picks: dict[str, int] = dict.fromkeys(self.arms, 0)

    # -- the opening screen ------------------------------------------------------
    def plan_budget(self, trials: int | None, timed: bool) -> None:
        """Screen only when time is the budget and the trial count can pay for it."""
        needed = SCREEN_TRIALS_PER_CONFIG * self.screen
        self.short_runs = timed and self.screen > 0 and (trials is None or trials >= needed)

    def screening(self) -> bool:
        """Whether the next suggestion still belongs to the screen."""
        if not self.short_runs or self._screened:
            return False
        full = {self.space.key(c) for c, _, fidelity in self.observations_ if fidelity >= 1.0}
        # The baseline (or a warm start's trials) count as full-length configs too.
        self._screened = len(full) > self.screen  # for good: the told history only grows
        return not self._screened

    def suggest(self, n: int = 1, pending: Sequence[Suggestion] = ()) -> list[Suggestion]:
        if not self.screening():
            return super().suggest(n, pending)
        screen = HyperbandOptimizer(self.space, self.seed)
        screen.plan_safety(self.floor, self.safe_centre)
        for config, loss, fidelity in self.observations_:
            screen.tell(config, loss, fidelity)
        screen.rng = self.rng
        return screen.suggest(n, pending)

    def _training_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """As the GP's, but a config's shorter runs give way to its longest ones."""
        if all(fidelity >= 1.0 for _, _, fidelity in self.observations_):
            return super()._training_data()  # the common case, kept cheap at 5,000 trials
        runs = [(self.space.key(c), fidelity) for c, _, fidelity in self.observations_]
        longest: dict[tuple[object, ...], float] = {}
        for key, fidelity in runs:
            longest[key] = max(fidelity, longest.get(key, 0.0))
        return self._data_of([i for i, (key, f) in enumerate(runs) if f >= longest[key]])

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "gains": [float(g) for g in self.gains],
            "nominees": self.nominees,
            "picks": self.picks,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Take what is well-formed and ignore the rest: a bad state must not stop asking."""
        super().load_state(state)
        gains = state.get("gains")
        if isinstance(gains, list) and len(gains) == len(self.arms):
            try:
                values = np.asarray(gains, dtype=float)
            except (TypeError, ValueError):
                values = None
            if values is not None and np.all(np.isfinite(values)):
                self.gains = values
        nominees = state.get("nominees")
        if isinstance(nominees, dict):
            self.nominees = {
                arm: config
                for arm, config in nominees.items()
                if arm in self.arms and self._is_config(config)
            }
        picks = state.get("picks")
        if isinstance(picks, dict):
            for arm, count in picks.items():
                if arm in self.picks and isinstance(count, int):
                    self.picks[arm] = count

    def _is_config(self, config: object) -> bool:
        if not isinstance(config, dict) or set(config) != set(self.space.names):
            return False
        try:
            return all(k.validate(config[k.name]) == config[k.name] for k in self.space.knobs)
        except ValueError:
            return False

    def _reward(self, model: Any) -> None:
        """Credit every arm with minus the posterior mean at its last nominee."""
        if not self.nominees:
            return
        arms = [a for a in self.arms if a in self.nominees]
        mean, _ = model.predict(self.space.encode_many([self.nominees[a] for a in arms]))
        for arm, m in zip(arms, mean, strict=True):
            self.gains[self.arms.index(arm)] += -float(m)
        self.nominees = {}

    def tell(self, config: Config, loss: float | None, fidelity: float = 1.0) -> None:
        super().tell(config, loss, fidelity)
        if self._forest is not None:
            self._forest.tell(config, loss, fidelity)

    def _forest_score(self) -> Score | None:
        """The random-forest arm's EI (the ``rf`` optimiser's model), sharing the GP's search."""
        if self._forest is None:
            return None
        data = self._forest._training_data()
        if data is None:
            return None
        from autotune.optimizers.forest import ForestOptimizer
        from autotune.optimizers.gp import expected_improvement, transform_losses

        X, raw = data
        y = transform_losses(raw)
        model = self._forest._fit(X, y)
        incumbent = float(y.min())

        gp = self.model_

        def score(C: np.ndarray) -> np.ndarray:
            mean, std = ForestOptimizer._predict(model, C)
            value = expected_improvement(mean, std, incumbent)
            if gp is None or self._floor_model is None:
                return value
            return self._guard(C, value, *gp.predict(C))  # the GP judges safety for every arm

        return score

    def _choose(
        self,
        model: Any,
        best: float,
        fail_rate: Any,
        anchors: list[Config],
        exclude: set[tuple[object, ...]],
    ) -> Config | None:
        self._reward(model)
        scores = self._scores(model, best, fail_rate)
        arms, funcs = [], []
        for arm in self.arms:
            if arm == "rf":
                rf = self._forest_score()
                if rf is None:
                    continue
                arms.append(arm)
                funcs.append(rf)
            else:
                arms.append(arm)
                funcs.append(scores[arm])
        found = maximise(
            self.space,
            funcs,
            self.rng,
            anchors,
            exclude,
            n_random=self.n_candidates,
            n_local=self.n_local,
        )
        return self._pick({a: c for a, c in zip(arms, found, strict=True) if c is not None})

    def _pick(self, nominees: dict[str, Config]) -> Config | None:
        """Hedge: draw one arm's nominee with probability proportional to exp(eta * gain)."""
        if not nominees:
            return None
        names = list(nominees)
        g = np.array([self.gains[self.arms.index(a)] for a in names])
        p = np.exp(self.eta * (g - g.max()))
        p /= p.sum()
        arm = names[int(self.rng.choice(len(names), p=p))]
        self.nominees = nominees
        self.last_arm = arm
        self.picks[arm] = self.picks.get(arm, 0) + 1
        return nominees[arm]

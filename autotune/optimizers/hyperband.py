"""Hyperband over run length: short runs screen many configs, the best earn longer ones.

This is asynchronous successive halving (ASHA, Li et al., MLSys 2020), the
form of Hyperband that suits a tuner whose agents finish trials at any time:
rungs are fractions of the workload's full duration (1/9, 1/3, 1 with
eta = 3). Whenever a slot is free, the best 1/eta of a rung that has not yet
run at the next rung is promoted; otherwise a new config starts at the lowest
rung. New configs come from a GP fitted on the highest rung with enough data,
as BOHB does with its model (Falkner et al., ICML 2018), so screening is not
blind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autotune.optimizers._base import Optimizer, Suggestion
from autotune.space import Space
from autotune.spec import Config


def rungs_for(eta: int, min_fidelity: float) -> list[float]:
    """Fidelities from ``min_fidelity`` up to 1 in steps of ``eta``."""
    if eta < 2 or not 0 < min_fidelity <= 1:
        raise ValueError("hyperband needs eta >= 2 and 0 < min_fidelity <= 1")
    out = []
    f = 1.0
    while f >= min_fidelity * (1 - 1e-9):
        out.append(f)
        f /= eta
    return sorted(round(x, 6) for x in out)


class HyperbandOptimizer(Optimizer):
    name = "hyperband"

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        eta: int = 3,
        min_fidelity: float = 1 / 9,
        inner: str = "gp",
    ) -> None:
        super().__init__(space, seed)
        self.eta = eta
        self.rungs = rungs_for(eta, min_fidelity)
        self.inner = inner

    def state_dict(self) -> dict[str, Any]:
        return {"rungs": self.rungs}

    def _rung(self, fidelity: float) -> int:
        """The rung a fidelity belongs to (the highest one it reaches)."""
        reached = [i for i, f in enumerate(self.rungs) if fidelity >= f * (1 - 1e-6)]
        return reached[-1] if reached else 0

    def _at(self, rung: int) -> list[tuple[Config, float | None]]:
        return [(c, loss) for c, loss, f in self.observations_ if self._rung(f) == rung]

    def _promotion(self, pending: Sequence[Suggestion]) -> Suggestion | None:
        """The best not-yet-promoted config of the highest rung that has one (ASHA)."""
        for rung in range(len(self.rungs) - 2, -1, -1):
            done = self._at(rung)
            ok = sorted(((c, loss) for c, loss in done if loss is not None), key=lambda t: t[1])
            top = ok[: len(done) // self.eta]
            above = {self.space.key(c) for c, _ in self._at(rung + 1)}
            above |= {
                self.space.key(p.config) for p in pending if self._rung(p.fidelity) == rung + 1
            }
            for config, _ in top:
                if self.space.key(config) not in above:
                    return Suggestion(config, fidelity=self.rungs[rung + 1])
        return None

    def _new(self, n: int, pending: Sequence[Config]) -> list[Config]:
        """New configs for the lowest rung, from a model of the highest rung with data."""
        from autotune.optimizers import make_optimizer

        # BOHB's rule: a rung needs more results than dimensions before its model
        # is trusted; a GP on four clustered good points sends EI to the corners.
        enough = max(8, len(self.space) + 2)
        model_rung = next(
            (
                r
                for r in range(len(self.rungs) - 1, -1, -1)
                if sum(loss is not None for _, loss in self._at(r)) >= enough
            ),
            None,
        )
        if model_rung is None:
            inner = make_optimizer("lhs", self.space, self.seed)
            inner.plan_safety(self.floor, self.safe_centre)
            for config, loss in self.history_:
                inner.tell(config, loss)
            inner.rng = self.rng
            return inner.ask(n, pending)
        inner = make_optimizer(self.inner, self.space, self.seed)
        inner.plan_safety(self.floor, self.safe_centre)
        # The GP's own space-filling start is already covered by the screened configs.
        if hasattr(inner, "n_init"):
            inner.n_init = 0
        inner.rng = self.rng
        for config, loss in self._at(model_rung):
            inner.tell(config, loss)
        told = {self.space.key(c) for c, _ in self._at(model_rung)}
        others = [c for c, _ in self.history_ if self.space.key(c) not in told]
        return inner.ask(n, [*pending, *others])

    def suggest(self, n: int = 1, pending: Sequence[Suggestion] = ()) -> list[Suggestion]:
        out: list[Suggestion] = []
        while len(out) < n:
            promoted = self._promotion([*pending, *out])
            if promoted is not None:
                out.append(promoted)
                continue
            new = self._new(n - len(out), [p.config for p in [*pending, *out]])
            out.extend(Suggestion(c, fidelity=self.rungs[0]) for c in new)
        return out

    def ask(self, n: int = 1, pending: Sequence[Config] = ()) -> list[Config]:
        """New configs only: promotions re-measure seen configs, which ``ask`` never returns."""
        return self._new(n, pending)

"""Random search: the baseline every other optimiser must beat (Bergstra & Bengio, 2012)."""

from __future__ import annotations

from collections.abc import Sequence

from autotune.optimizers._base import Optimizer
from autotune.spec import Config


class RandomOptimizer(Optimizer):
    name = "random"

    def ask(self, n: int = 1, pending: Sequence[Config] = ()) -> list[Config]:
        return self._fresh(self.space.sample(self.rng, n), n, exclude=pending)

"""Latin hypercube designs: space-filling starts for model-based optimisers."""

from __future__ import annotations

from collections.abc import Sequence

from autotune.optimizers._base import Optimizer
from autotune.space import Space
from autotune.spec import Config

SAFE_SHRINK = 0.5
"""A safe design (``plan_safety``) spans this share of each knob's scaled range,
centred on the default: the search's first configs stay near what is known to
work, and the model, once fitted, decides how far out it is safe to go."""


def lhs_design(
    space: Space, n: int, seed: int, safe: bool = False, around: Config | None = None
) -> list[Config]:
    """``n`` configs from a Latin hypercube over one coordinate per knob; ``safe``
    shrinks it by ``SAFE_SHRINK`` towards ``around`` (None: the defaults).

    The design depends only on the space and the seed, so a resumed
    experiment continues the same design.
    """
    if n <= 0 or len(space) == 0:
        return []
    from scipy.stats import qmc  # lazily: scipy.stats is slow to import

    sampler = qmc.LatinHypercube(d=len(space), seed=seed)
    points = sampler.random(n)
    if safe:
        centre = space.to_unit(space.default() if around is None else around)
        points = centre + SAFE_SHRINK * (points - centre)
    out = []
    for u in points:
        config = space.from_unit(u)
        if space.is_valid(config):
            out.append(config)
    return out


class LHSOptimizer(Optimizer):
    """A Latin hypercube of ``size`` points, then random sampling."""

    name = "lhs"

    def __init__(self, space: Space, seed: int = 0, size: int = 20) -> None:
        super().__init__(space, seed)
        self.size = size

    def ask(self, n: int = 1, pending: Sequence[Config] = ()) -> list[Config]:
        safe = self.floor is not None
        design = lhs_design(self.space, self.size, self.seed, safe, self.safe_centre)
        return self._fresh(design + self.space.sample(self.rng, n), n, exclude=pending)

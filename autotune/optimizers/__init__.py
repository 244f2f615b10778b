"""Optimisers behind one ask/tell interface."""

from __future__ import annotations

from autotune.optimizers._base import Optimizer, SpaceExhausted, Suggestion, failure_penalty
from autotune.optimizers.auto import AutoOptimizer
from autotune.optimizers.forest import ForestOptimizer
from autotune.optimizers.gp import GPOptimizer
from autotune.optimizers.hesbo import HeSBOOptimizer
from autotune.optimizers.hyperband import HyperbandOptimizer
from autotune.optimizers.lhs import LHSOptimizer, lhs_design
from autotune.optimizers.random import RandomOptimizer
from autotune.optimizers.skopt import SkoptForest, SkoptGP
from autotune.space import Space

OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls
    for cls in (
        AutoOptimizer,
        GPOptimizer,
        HyperbandOptimizer,
        RandomOptimizer,
        LHSOptimizer,
        HeSBOOptimizer,
        ForestOptimizer,
        SkoptGP,
        SkoptForest,
    )
}


def make_optimizer(name: str, space: Space, seed: int = 0) -> Optimizer:
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; choose one of {', '.join(sorted(OPTIMIZERS))}"
        ) from None
    return cls(space, seed=seed)


__all__ = [
    "OPTIMIZERS",
    "AutoOptimizer",
    "ForestOptimizer",
    "GPOptimizer",
    "HeSBOOptimizer",
    "HyperbandOptimizer",
    "LHSOptimizer",
    "Optimizer",
    "RandomOptimizer",
    "SkoptForest",
    "SkoptGP",
    "SpaceExhausted",
    "Suggestion",
    "failure_penalty",
    "lhs_design",
    "make_optimizer",
]

"""Maximise an acquisition over a mixed, constrained space.

Candidates are random points plus local moves around the best observed
configs, refined by a few rounds of smaller moves around the best scoring
ones. They are scored as arrays; only the top few become configs and meet the
constraint checker, which keeps a suggestion in milliseconds on 50-knob specs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np

from autotune.space import Space
from autotune.spec import Config

Score = Callable[[np.ndarray], np.ndarray]
"""Features (n, n_features) → acquisition values, higher is better."""


def candidate_units(
    space: Space,
    rng: np.random.Generator,
    anchors: Sequence[Config],
    n_random: int,
    n_local: int,
    step: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    U, S = space.sample_units(rng, n_random)
    if anchors and n_local > 0:
        per = max(1, n_local // len(anchors))
        parts_u, parts_s = [U], [S]
        for config in anchors:
            u, s = space.units_of(config)
            pu, ps = space.perturb_units(u, s, rng, per, step)
            parts_u.append(pu)
            parts_s.append(ps)
        U, S = np.vstack(parts_u), np.vstack(parts_s)
    return U, S


def maximise(
    space: Space,
    scores: Sequence[Score],
    rng: np.random.Generator,
    anchors: Sequence[Config],
    exclude: Collection[tuple[object, ...]],
    n_random: int = 1000,
    n_local: int = 300,
    refine: int = 2,
) -> list[Config | None]:
    """The best valid config not in ``exclude`` under each score (None if none found).

    Several scores share one candidate set, so a portfolio of acquisition
    functions costs one search.
    """
    U, S = candidate_units(space, rng, anchors, n_random, n_local)
    X = space.features_of_units(U, S)
    values = [score(X) for score in scores]
    for _ in range(refine):
        # Polish the leaders of every score with smaller moves.
        top: list[int] = []
        for v in values:
            top.extend(int(i) for i in np.argsort(-v)[:3])
        parts_u, parts_s = [U], [S]
        for i in dict.fromkeys(top):
            pu, ps = space.perturb_units(U[i], S[i], rng, 30, step=0.03)
            parts_u.append(pu)
            parts_s.append(ps)
        newU, newS = np.vstack(parts_u[1:]), np.vstack(parts_s[1:])
        newX = space.features_of_units(newU, newS)
        U, S, X = np.vstack([U, newU]), np.vstack([S, newS]), np.vstack([X, newX])
        values = [np.concatenate([v, score(newX)]) for v, score in zip(values, scores, strict=True)]
    out: list[Config | None] = []
    for v in values:
        out.append(_first_valid(space, U, S, v, exclude))
    return out


def _first_valid(
    space: Space,
    U: np.ndarray,
    S: np.ndarray,
    values: np.ndarray,
    exclude: Collection[tuple[object, ...]],
    tries: int = 200,
) -> Config | None:
    for i in np.argsort(-values, kind="stable")[:tries]:
        config = space.config_of_units(U[i], S[i])
        if space.key(config) not in exclude and space.is_valid(config):
            return config
    return None

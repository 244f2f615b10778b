"""The synthetic problems: Branin, Hartmann-6 and Ackley-10 over mixed spaces, with
their exact optima over those domains."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from autotune.spec import Config

if TYPE_CHECKING:
    pass

from autotune.bench._problem import Problem, _space


def branin(x1: float, x2: float) -> float:
    """Branin-Hoo on [-5, 10] × [0, 15].

    Minimum 0.397887 at (−π, 12.275), (π, 2.275) and (9.42478, 2.475).
    """
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


HARTMANN6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
HARTMANN6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
HARTMANN6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
HARTMANN6_ARGMIN = (0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054)
HARTMANN6_MIN = -3.32237


def hartmann6(x: Sequence[float] | np.ndarray) -> float:
    """Hartmann-6 on [0, 1]^6; minimum −3.32237 at ``HARTMANN6_ARGMIN``."""
    x = np.asarray(x, dtype=float)
    inner = np.sum(HARTMANN6_A * (x[None, :] - HARTMANN6_P) ** 2, axis=1)
    return float(-np.sum(HARTMANN6_ALPHA * np.exp(-inner)))


def ackley(x: Sequence[float] | np.ndarray) -> float:
    """Ackley (a=20, b=0.2, c=2π); minimum 0 at the origin."""
    x = np.asarray(x, dtype=float)
    d = len(x)
    return float(
        -20.0 * math.exp(-0.2 * math.sqrt(float(np.sum(x**2)) / d))
        - math.exp(float(np.sum(np.cos(2 * math.pi * x))) / d)
        + 20.0
        + math.e
    )


# -- Branin: x2 on an integer grid -----------------------------------------------------
BRANIN_SPEC = """\
system: bench_branin
description: Branin-Hoo with x2 on an integer grid (x2 = level + 0.275).
knobs:
  x1:
    type: real
    min: -5
    max: 10
    default: 0
  x2:
    type: integer
    min: 0
    max: 14
    default: 7
    description: Branin's x2 is this level + 0.275, so two of the three minima stay on the grid.
"""
BRANIN_X2_OFFSET = 0.275
BRANIN_MIN = branin(math.pi, 2.275)  # 0.39788735772973816


def _branin_objective(config: Config) -> float:
    return branin(float(config["x1"]), float(config["x2"]) + BRANIN_X2_OFFSET)


# -- Hartmann-6: two dims on a 1/20 grid, one an enum of levels ------------------------
HARTMANN6_SPEC = """\
system: bench_hartmann6
description: Hartmann-6 with x1, x2 on a 1/20 grid and x4 an enum whose levels map to values.
knobs:
  x1:
    type: integer
    min: 0
    max: 20
    default: 10
    description: Hartmann's x1 = value / 20.
  x2:
    type: integer
    min: 0
    max: 20
    default: 10
    description: Hartmann's x2 = value / 20.
  x3:
    type: real
    min: 0
    max: 1
    default: 0.5
  x4:
    type: enum
    values: [a, b, c, d, e]
    default: a
    description: Hartmann's x4 from HARTMANN6_X4 (levels in no particular order).
  x5:
    type: real
    min: 0
    max: 1
    default: 0.5
  x6:
    type: real
    min: 0
    max: 1
    default: 0.5
"""
HARTMANN6_X4 = {"a": 0.7, "b": 0.1, "c": 0.45, "d": 0.95, "e": 0.275}
# The minimum over the mixed domain: x1 = 4/20, x2 = 3/20, x4 = "e" (0.275) are the
# grid points next to the continuous argmin, and x3, x5, x6 re-optimised with
# L-BFGS-B from it (see tests/unit/bench/test_problems.py, which recomputes it).
# It is within 4e-5 of the continuous minimum, and every other local minimum of
# Hartmann-6 is above −3.21, so no other grid cell can beat it.
HARTMANN6_MIXED_ARGMIN: Config = {
    "x1": 4,
    "x2": 3,
    "x3": 0.47707655665505716,
    "x4": "e",
    "x5": 0.3116804375415562,
    "x6": 0.6572701793777302,
}


def _hartmann6_x(config: Config) -> list[float]:
    return [
        float(config["x1"]) / 20.0,
        float(config["x2"]) / 20.0,
        float(config["x3"]),
        HARTMANN6_X4[str(config["x4"])],
        float(config["x5"]),
        float(config["x6"]),
    ]


def _hartmann6_objective(config: Config) -> float:
    return hartmann6(_hartmann6_x(config))


# -- Ackley-10: integer, enum and log-scaled knobs ----------------------------------------
ACKLEY10_SPEC = """\
system: bench_ackley10
description: Ackley in 10 dimensions with integer, enum and log-scaled knobs.
knobs:
  x0:
    type: real
    min: -32.768
    max: 32.768
    default: 12.5
  x1:
    type: real
    min: -32.768
    max: 32.768
    default: -12.5
  x2:
    type: real
    min: -32.768
    max: 32.768
    default: 20.5
  x3:
    type: integer
    min: -32
    max: 32
    default: 8
  x4:
    type: integer
    min: -32
    max: 32
    default: -16
  x5:
    type: enum
    values: [a, b, c, d, e]
    default: a
    description: Ackley's x5 from ACKLEY10_X5 (levels in no particular order).
  x6:
    type: integer
    min: 1
    max: 32768
    default: 4096
    scale: log
    description: Ackley's x6 = 3.2768 (log2(value) − 5), like a memory knob best at 32.
  x7:
    type: real
    min: 0.01
    max: 100
    default: 10
    scale: log
    description: Ackley's x7 = 10 log10(value), best at 1.
  x8:
    type: real
    min: -32.768
    max: 32.768
    default: 5.5
  x9:
    type: real
    min: -32.768
    max: 32.768
    default: -25.5
"""
ACKLEY10_X5 = {"a": 16.0, "b": -8.0, "c": 24.0, "d": 0.0, "e": -30.0}
ACKLEY10_ARGMIN: Config = {
    "x0": 0.0,
    "x1": 0.0,
    "x2": 0.0,
    "x3": 0,
    "x4": 0,
    "x5": "d",
    "x6": 32,
    "x7": 1.0,
    "x8": 0.0,
    "x9": 0.0,
}


def _ackley10_x(config: Config) -> list[float]:
    return [
        float(config["x0"]),
        float(config["x1"]),
        float(config["x2"]),
        float(config["x3"]),
        float(config["x4"]),
        ACKLEY10_X5[str(config["x5"])],
        3.2768 * (math.log2(float(config["x6"])) - 5.0),
        10.0 * math.log10(float(config["x7"])),
        float(config["x8"]),
        float(config["x9"]),
    ]


def _ackley10_objective(config: Config) -> float:
    return ackley(_ackley10_x(config))


# Noise for the "-noisy" variants, and the fidelity noise scale of every variant:
# 5% of the spread (95th minus 5th percentile) of the loss over uniformly random
# configs of the space; tests/unit/bench/test_problems.py recomputes the spread.
NOISE_SD = {"branin": 7.4, "hartmann6": 0.055, "ackley10": 0.077}


def _synthetic(
    name: str, description: str, spec: str, objective: Callable[[Config], float], argmin: Config
) -> Callable[[bool], Problem]:
    def make(noisy: bool) -> Problem:
        sd = NOISE_SD[name]
        return Problem(
            name=f"{name}-noisy" if noisy else name,
            description=description + (f"; Gaussian noise σ = {sd:g}" if noisy else ""),
            space=_space(spec, name),
            objective=objective,
            # The loss at the argmin itself, so regret there is exactly 0.
            f_star_fn=lambda: objective(argmin),
            noise_sd=sd if noisy else 0.0,
            fidelity_sd=sd,
            argmin=dict(argmin),
        )

    return make


_BRANIN = _synthetic(
    "branin",
    "Branin (2-D), x2 on an integer grid",
    BRANIN_SPEC,
    _branin_objective,
    {"x1": math.pi, "x2": 2},
)
_HARTMANN6 = _synthetic(
    "hartmann6",
    "Hartmann-6, two integer-grid dims and one enum",
    HARTMANN6_SPEC,
    _hartmann6_objective,
    HARTMANN6_MIXED_ARGMIN,
)
_ACKLEY10 = _synthetic(
    "ackley10",
    "Ackley-10, two integer, one enum, one log-integer and one log-real dim",
    ACKLEY10_SPEC,
    _ackley10_objective,
    ACKLEY10_ARGMIN,
)


# -- the database surrogate ----------------------------------------------------------------

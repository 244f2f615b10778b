"""Benchmark problems: a knob spec, a loss to minimise and its known optimum.

Each problem's space comes from real spec YAML parsed by ``parse_spec``, so
autotune's optimisers see integer, enum and log-scaled knobs exactly as they
would in a tuning session. Everything is deterministic: noise is drawn from a
generator seeded by (problem, seed, evaluation index), so a rerun gives the
same numbers and every optimiser meets the same noise at the same step.

Simple regret is judged on the noise-free value (``objective``) of the config
an optimiser would pick, against ``f_star``: the exact minimum over the mixed
domain for the synthetic problems, an estimate for the database surrogate.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autotune.space import Space
from autotune.spec import Config, Machine, Value, parse_spec

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestRegressor

GiB = 1024**3
SYNTHETIC_MACHINE = Machine(memory_bytes=16 * GiB, cpus=2)
"""Synthetic specs have no machine-relative bounds; a fixed machine keeps them host-independent."""

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDED_DIR = REPO_ROOT / "experiments" / "recorded"
PG_RECORDED = RECORDED_DIR / "pgbench-tpcb-random80.json"


@dataclass
class Problem:
    """A loss over a space, with its optimum and measurement noise.

    ``noise_sd`` is the Gaussian noise on every observation. ``fidelity_sd``
    is the extra noise scale for a shortened run: an observation at fidelity
    ``φ < 1`` (Hyperband-style screening) gets noise with standard deviation
    ``sqrt(noise_sd² + fidelity_sd² (1/φ − 1))``, since a shorter
    measurement is a noisier one; at full fidelity it is just ``noise_sd``.
    """

    name: str
    description: str
    space: Space
    objective: Callable[[Config], float]
    f_star_fn: Callable[[], float]
    noise_sd: float = 0.0
    fidelity_sd: float = 0.0
    f_star_exact: bool = True
    argmin: Config | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def f_star(self) -> float:
        """The minimum of ``objective`` over the space (exact, or an estimate: ``f_star_exact``)."""
        return float(self.f_star_fn())

    def noise(self, seed: int, index: int, fidelity: float = 1.0) -> float:
        """The noise added to evaluation ``index`` of a run with ``seed``: a pure function."""
        sd = math.sqrt(self.noise_sd**2 + self.fidelity_sd**2 * (1.0 / fidelity - 1.0))
        if sd == 0.0:
            return 0.0
        # crc32, not hash(): str hashes change between processes.
        rng = np.random.default_rng([zlib.crc32(self.name.encode()), seed, index])
        return float(sd * rng.standard_normal())

    def observe(self, config: Config, seed: int, index: int, fidelity: float = 1.0) -> float:
        """What a measurement of ``config`` reports: the true loss plus noise."""
        return self.objective(config) + self.noise(seed, index, fidelity)


def _space(yaml_text: str, name: str, machine: Machine = SYNTHETIC_MACHINE) -> Space:
    spec = parse_spec(yaml_text, f"<bench:{name}>", machine)
    return Space(spec, [k for k, knob in spec.knobs.items() if knob.tunable], machine)


# -- synthetic functions (Surjanovic & Bingham's Virtual Library of Simulation Experiments) --
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
def load_recorded(path: Path = PG_RECORDED) -> dict[str, Any]:
    """A recorded experiment as an export document (``autotune export``, format version 1).

    ``experiment`` holds the spec text and the settings (knobs, and the machine
    the space was resolved on); ``trials`` every trial. A file in the older
    recorded format (``{"header": ..., "trials": ...}``) is converted on reading.
    Raises ``ValueError`` naming the file and the field if it cannot be used.
    """
    from autotune.store import StoreError, read_export

    try:
        return read_export(path)
    except StoreError as exc:
        raise ValueError(str(exc)) from None


def recorded_space(experiment: dict[str, Any]) -> Space:
    """The recorded experiment's space: its spec and knobs on its recorded machine.

    ``experiment`` is the ``experiment`` object of ``load_recorded``'s document.
    """
    settings = experiment["settings"]
    machine = Machine(**settings["machine"])
    spec = experiment["spec"]
    parsed = parse_spec(spec["content"], Path(spec["path"]).name or "<recorded spec>", machine)
    return Space(parsed, list(settings["knobs"]), machine)


def training_trials(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only successful, full-length trials: a failed or shortened run measures something else."""
    return [
        t
        for t in trials
        if t.get("status") == "ok"
        and t.get("objective") is not None
        and float(t.get("fidelity", 1.0)) == 1.0
    ]


def fit_surrogate(space: Space, trials: list[dict[str, Any]]) -> RandomForestRegressor:
    """A random forest from the encoded config to the objective (fixed random_state)."""
    from sklearn.ensemble import RandomForestRegressor

    X = space.encode_many(t["config"] for t in trials)
    y = np.array([float(t["objective"]) for t in trials])
    model = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=0, n_jobs=1)
    model.fit(X, y)
    return model


def _coordinate_values(space: Space, config: Config, index: int, grid: int) -> list[Config]:
    """``config`` with knob ``index`` set to each of ``grid`` levels and each special value."""
    knob = space.knobs[index]
    if knob.type == "enum":
        values: list[Value] = list(knob.values)
    elif knob.type == "bool":
        values = [False, True]
    else:
        u = space.to_unit(config)
        values = []
        for level in np.linspace(0.0, 1.0, grid):
            u[index] = level
            values.append(space.from_unit(u)[knob.name])
        values += list(knob.special)
    out: list[Config] = []
    for value in dict.fromkeys(values):  # distinct, in order
        candidate: Config = {**config, knob.name: value}
        if candidate != config and space.is_valid(candidate):
            out.append(candidate)
    return out


def estimate_min(
    space: Space,
    loss_many: Callable[[list[Config]], np.ndarray],
    known: Sequence[Config],
    n_sample: int,
    seed: int = 0,
    n_starts: int = 20,
    grid: int = 65,
    max_sweeps: int = 20,
) -> tuple[float, Config]:
    """The lowest loss found by a random sample plus ``known`` configs, then
    coordinate descent from the best few: an estimate (an upper bound) of the minimum.

    Coordinate descent suits a tree ensemble, whose splits are axis-aligned:
    one knob at a time over a fine grid finds the steps that a random
    perturbation of several knobs rarely hits.
    """
    rng = np.random.default_rng(seed)
    configs = [*space.sample(rng, n_sample), *(dict(c) for c in known)]
    losses = loss_many(configs)
    order = np.argsort(losses, kind="stable")[:n_starts]
    best_loss, best = float(losses[order[0]]), configs[int(order[0])]
    for i in order:
        current, current_loss = configs[int(i)], float(losses[int(i)])
        for _ in range(max_sweeps):
            improved = False
            for index in range(len(space)):
                moves = _coordinate_values(space, current, index, grid)
                if not moves:
                    continue
                move_losses = loss_many(moves)
                j = int(np.argmin(move_losses))
                if move_losses[j] < current_loss - 1e-12:
                    current, current_loss = moves[j], float(move_losses[j])
                    improved = True
            if not improved:
                break
        if current_loss < best_loss:
            best_loss, best = current_loss, current
    return best_loss, best


def pg_surrogate(path: Path = PG_RECORDED, n_sample: int = 20_000, n_starts: int = 20) -> Problem:
    """pgbench TPC-B throughput predicted by a random forest fitted on real recorded trials.

    Loss = −predicted tps. ``f_star`` is estimated by ``estimate_min``
    (``n_sample`` random configs plus the recorded ones, then coordinate descent).
    """
    data = load_recorded(path)
    space = recorded_space(data["experiment"])
    trials = training_trials(data["trials"])
    if len(trials) < 10:
        raise ValueError(f"{path}: only {len(trials)} usable trials; the surrogate needs 10")
    model = fit_surrogate(space, trials)

    def loss_many(configs: list[Config]) -> np.ndarray:
        return -np.asarray(model.predict(space.encode_many(configs)), dtype=float)

    def objective(config: Config) -> float:
        return float(loss_many([config])[0])

    def f_star() -> float:
        known = [t["config"] for t in trials]
        return estimate_min(space, loss_many, known, n_sample, n_starts=n_starts)[0]

    return Problem(
        name="pg-tpcb-rf",
        description=(
            f"PostgreSQL pgbench TPC-B, −tps from a random forest fitted on {len(trials)} "
            f"recorded trials over {len(space)} knobs ({Path(path).name})"
        ),
        space=space,
        objective=objective,
        f_star_fn=f_star,
        f_star_exact=False,
        # Fidelity noise: 5% of the recorded tps spread, as for the synthetic problems.
        fidelity_sd=0.05 * float(np.ptp([t["objective"] for t in trials])),
        extra={"recorded": str(path), "trials": len(trials)},
    )


# -- the registry ----------------------------------------------------------------------------
PROBLEMS: dict[str, Callable[[], Problem]] = {
    "branin": lambda: _BRANIN(False),
    "hartmann6": lambda: _HARTMANN6(False),
    "ackley10": lambda: _ACKLEY10(False),
    "branin-noisy": lambda: _BRANIN(True),
    "hartmann6-noisy": lambda: _HARTMANN6(True),
    "ackley10-noisy": lambda: _ACKLEY10(True),
    "pg-tpcb-rf": pg_surrogate,
}


@cache
def get_problem(name: str) -> Problem:
    """A problem by name; built once per process (the surrogate fits a model)."""
    try:
        make = PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; choose from {', '.join(PROBLEMS)}") from None
    return make()

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

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autotune.space import Space
from autotune.spec import Config, Machine, Value, parse_spec

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestRegressor

from autotune.bench._problem import PG_RECORDED, RECORDED_DIR, REPO_ROOT, SYNTHETIC_MACHINE, Problem
from autotune.bench._synthetic import (
    _ACKLEY10,
    _BRANIN,
    _HARTMANN6,
    BRANIN_MIN,
    HARTMANN6_ARGMIN,
    HARTMANN6_MIN,
    HARTMANN6_X4,
    NOISE_SD,
    ackley,
    branin,
    hartmann6,
)


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
    """Only successful, full-length search trials: a failed or shortened run measures
    something else, and a verification run ran beside a twin, sharing the host."""
    return [
        t
        for t in trials
        if t.get("status") == "ok"
        and t.get("phase") in (None, "search")
        and t.get("objective") is not None
        and float(t.get("fidelity", 1.0)) == 1.0
    ]


def fit_surrogate(space: Space, trials: list[dict[str, Any]]) -> RandomForestRegressor:
    """A random forest from the encoded config to the objective (fixed random_state)."""
    model = _forest()
    model.fit(*_xy(space, trials))
    return model


def _forest() -> RandomForestRegressor:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=0, n_jobs=1)


def _xy(space: Space, trials: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    X = space.encode_many(t["config"] for t in trials)
    return X, np.array([float(t["objective"]) for t in trials])


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


MIN_R2 = 0.5
"""A surrogate whose cross-validated R² is below this predicts too little of the real
system for a win on it to mean much: its problem is reported, not counted."""


def cv_r2(space: Space, trials: list[dict[str, Any]], folds: int = 5) -> float:
    """The forest's R² on held-out trials (shuffled k-fold, fixed seed): how much of
    the recorded spread it predicts for configs it was not fitted on."""
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict

    X, y = _xy(space, trials)
    predicted = cross_val_predict(_forest(), X, y, cv=KFold(folds, shuffle=True, random_state=0))
    return float(r2_score(y, predicted))


def recorded_surrogate(
    path: Path, name: str, what: str, n_sample: int = 20_000, n_starts: int = 20
) -> Problem:
    """A recorded session's objective predicted by a random forest fitted on its real
    trials: loss = −prediction for a metric to maximise, the prediction otherwise.

    ``f_star`` is estimated by ``estimate_min`` (``n_sample`` random configs plus the
    recorded ones, then coordinate descent). ``extra["r2"]`` is the forest's
    cross-validated R² (``cv_r2``).
    """
    data = load_recorded(path)
    space = recorded_space(data["experiment"])
    sign = -1.0 if data["experiment"].get("direction", "maximize") == "maximize" else 1.0
    metric = data["experiment"].get("objective_metric", "objective")
    trials = training_trials(data["trials"])
    if len(trials) < 10:
        raise ValueError(f"{path}: only {len(trials)} usable trials; the surrogate needs 10")
    model = fit_surrogate(space, trials)

    def loss_many(configs: list[Config]) -> np.ndarray:
        return sign * np.asarray(model.predict(space.encode_many(configs)), dtype=float)

    def objective(config: Config) -> float:
        return float(loss_many([config])[0])

    def f_star() -> float:
        known = [t["config"] for t in trials]
        return estimate_min(space, loss_many, known, n_sample, n_starts=n_starts)[0]

    r2 = cv_r2(space, trials)
    return Problem(
        name=name,
        description=(
            f"{what}, {'−' if sign < 0 else ''}{metric} from a random forest fitted on "
            f"{len(trials)} recorded trials over {len(space)} knobs ({Path(path).name})"
        ),
        space=space,
        objective=objective,
        f_star_fn=f_star,
        f_star_exact=False,
        # Fidelity noise: 5% of the recorded spread, as for the synthetic problems.
        fidelity_sd=0.05 * float(np.ptp([t["objective"] for t in trials])),
        extra={"recorded": str(path), "trials": len(trials), "r2": r2},
    )


def pg_surrogate(path: Path = PG_RECORDED, n_sample: int = 20_000, n_starts: int = 20) -> Problem:
    """pgbench TPC-B throughput predicted by a random forest fitted on real recorded trials."""
    return recorded_surrogate(
        path, "pg-tpcb-rf", "PostgreSQL pgbench TPC-B", n_sample=n_sample, n_starts=n_starts
    )


def is_counted(problem: Problem) -> bool:
    """Whether a problem counts in the summary: a surrogate only if it fits (``MIN_R2``)."""
    r2 = problem.extra.get("r2")
    return r2 is None or float(r2) >= MIN_R2


def _surrogate(file: str, name: str, what: str) -> Callable[[], Problem]:
    return lambda: recorded_surrogate(RECORDED_DIR / file, name, what)


# -- the registry ----------------------------------------------------------------------------
PROBLEMS: dict[str, Callable[[], Problem]] = {
    "branin": lambda: _BRANIN(False),
    "hartmann6": lambda: _HARTMANN6(False),
    "ackley10": lambda: _ACKLEY10(False),
    "branin-noisy": lambda: _BRANIN(True),
    "hartmann6-noisy": lambda: _HARTMANN6(True),
    "ackley10-noisy": lambda: _ACKLEY10(True),
    "pg-tpcb-rf": pg_surrogate,
    "pg-tpcb-oltp-rf": _surrogate(
        "pgbench-tpcb-oltp20.json", "pg-tpcb-oltp-rf", "PostgreSQL pgbench TPC-B, a GP session"
    ),
    "pg-simple-update-rf": _surrogate(
        "pgbench-simple-update-oltp30.json",
        "pg-simple-update-rf",
        "PostgreSQL pgbench simple-update",
    ),
    "pg-analytic-rf": _surrogate(
        "analytic-large-p1.json", "pg-analytic-rf", "PostgreSQL analytic-large (P1 session)"
    ),
    "mariadb-sysbench-rf": _surrogate(
        "mariadb-sysbench-oltp30.json", "mariadb-sysbench-rf", "MariaDB sysbench OLTP read-write"
    ),
    "rocksdb-readrandom-rf": _surrogate(
        "rocksdb-db_bench-readrandom30.json", "rocksdb-readrandom-rf", "RocksDB db_bench readrandom"
    ),
}


@cache
def get_problem(name: str) -> Problem:
    """A problem by name; built once per process (the surrogate fits a model)."""
    try:
        make = PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; choose from {', '.join(PROBLEMS)}") from None
    return make()


__all__ = [
    "BRANIN_MIN",
    "HARTMANN6_ARGMIN",
    "HARTMANN6_MIN",
    "HARTMANN6_X4",
    "MIN_R2",
    "NOISE_SD",
    "PG_RECORDED",
    "PROBLEMS",
    "RECORDED_DIR",
    "REPO_ROOT",
    "SYNTHETIC_MACHINE",
    "Problem",
    "ackley",
    "branin",
    "cv_r2",
    "estimate_min",
    "fit_surrogate",
    "get_problem",
    "hartmann6",
    "is_counted",
    "load_recorded",
    "pg_surrogate",
    "recorded_space",
    "recorded_surrogate",
    "training_trials",
]

"""Run the (problem, optimiser, seed) grid and write one CSV row per run and budget.

Each run goes once, to the largest budget, and best-so-far is read off at
every smaller budget. That equals separate runs because no optimiser here
adapts to the total budget: autotune's optimisers never see it, skopt's and
Optuna's initial designs have fixed sizes, and SMAC's design size is pinned
(``SMAC_INITIAL_CONFIGS``).

A run is a pure function of (problem, optimiser, seed, budget), so the CSV is
the same for the same arguments whatever ``jobs`` is, apart from ``wall_s``.
"""

from __future__ import annotations

import csv
import itertools
import math
import multiprocessing
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.bench.competitors import BUDGET_EPS, Evaluation, evaluation_cost, run_competitor
from autotune.bench.problems import get_problem

CSV_COLUMNS = (
    "problem",
    "optimizer",
    "seed",
    "budget",
    "evaluations",
    "best_value",
    "best_true",
    "f_star",
    "simple_regret",
    "wall_s",
    "error",
)


@dataclass(frozen=True)
class Job:
    problem: str
    optimizer: str
    seed: int
    budget: int


@dataclass(frozen=True)
class RunResult:
    job: Job
    evaluations: list[Evaluation]
    wall_s: float
    error: str | None = None


def run_job(job: Job) -> RunResult:
    """One run; an optimiser that raises is recorded with its error, not fatal to the grid."""
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    problem = get_problem(job.problem)
    # One BLAS thread per run: the grid already keeps every core busy.
    with threadpool_limits(1):
        try:
            ev = run_competitor(job.optimizer, problem, job.seed, job.budget)
            evaluations, error = ev.evaluations, None
        except Exception as exc:
            evaluations = []
            error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
    return RunResult(job, evaluations, time.perf_counter() - started, error)


@dataclass(frozen=True)
class BudgetRow:
    """A run read off at one budget."""

    evaluations: int
    best_value: float
    best_true: float
    wall_s: float


def at_budget(evaluations: Sequence[Evaluation], budget: float, overhead: float = 0.0) -> BudgetRow:
    """The best observed config among evaluations that fit in ``budget``.

    Full-fidelity observations decide when there are any, as a tuner reports
    the best full-length run; a screening run's value is too noisy to pick on.
    Each evaluation costs ``evaluation_cost(fidelity, overhead)``.
    """
    within: list[Evaluation] = []
    cost = 0.0
    for e in evaluations:
        cost += evaluation_cost(e.fidelity, overhead)
        if cost > budget + BUDGET_EPS:
            break
        within.append(e)
    ok = [e for e in within if e.observed is not None]
    full = [e for e in ok if e.fidelity >= 1.0] or ok
    wall = within[-1].elapsed_s if within else 0.0
    if not full:
        return BudgetRow(len(within), math.nan, math.nan, wall)
    best = min(full, key=lambda e: e.observed if e.observed is not None else math.inf)
    assert best.observed is not None and best.true is not None
    return BudgetRow(len(within), best.observed, best.true, wall)


def rows_of(result: RunResult, budgets: Sequence[int], f_star: float) -> list[dict[str, Any]]:
    """CSV rows for one run. Regret is clipped at 0: only an estimated f_star can be
    beaten, and then ``best_true < f_star`` in the row shows it."""
    rows = []
    for budget in sorted(budgets):
        if result.error is not None:
            row = BudgetRow(0, math.nan, math.nan, result.wall_s)
        else:
            row = at_budget(result.evaluations, budget)
        regret = max(row.best_true - f_star, 0.0) if math.isfinite(row.best_true) else math.nan
        rows.append(
            {
                "problem": result.job.problem,
                "optimizer": result.job.optimizer,
                "seed": result.job.seed,
                "budget": budget,
                "evaluations": row.evaluations,
                "best_value": row.best_value,
                "best_true": row.best_true,
                "f_star": f_star,
                "simple_regret": regret,
                "wall_s": round(row.wall_s, 3),
                "error": result.error or "",
            }
        )
    return rows


WARM_IMPORTS = {
    # competitor: modules its first run would otherwise import on the clock
    "skopt-gp_minimize": ("skopt",),
    "optuna-tpe": ("optuna",),
    "optuna-tpe-uni": ("optuna",),
    "optuna-gp": ("optuna", "torch"),
    "smac3-hpo": ("smac", "sklearn.ensemble"),
    "smac3-bb": ("smac", "sklearn.gaussian_process"),
}
AUTOTUNE_IMPORTS = ("scipy.stats", "sklearn.ensemble", "sklearn.gaussian_process")


def warm_up(optimizers: Sequence[str]) -> None:
    """Import the heavy libraries up front, so no run's wall time includes an import."""
    import importlib

    modules: dict[str, None] = {}
    for name in optimizers:
        for module in WARM_IMPORTS.get(name, AUTOTUNE_IMPORTS):
            modules[module] = None
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:  # an optional library may be missing or broken
            continue


def _init_worker(optimizers: Sequence[str]) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    warm_up(optimizers)


def run_grid(
    problems: Sequence[str],
    optimizers: Sequence[str],
    seeds: Iterable[int],
    budgets: Sequence[int],
    jobs: int = 2,
    progress: Callable[[RunResult, int, int], None] | None = None,
    deadline_s: float | None = None,
    done: Sequence[dict[str, Any]] = (),
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every (problem, optimiser, seed) run once at ``max(budgets)``; rows sorted by key.

    Runs go seed by seed, so a time box (``deadline_s``, wall seconds) stops
    after a whole number of seeds: no new run starts once it has passed, and
    only seeds that finished for every problem and optimiser are kept, so the
    comparison stays balanced.

    ``done`` holds rows of an earlier, interrupted grid (``--resume``): their
    runs are not repeated, since a run is a pure function of its job.
    ``on_rows`` sees each new run's rows as soon as it ends, so a checkpoint
    survives a kill.
    """
    top = max(budgets)
    seed_list = list(seeds)
    finished = completed_runs(done, budgets)
    grid = [
        Job(p, o, s, top)
        for s in seed_list
        for p in problems
        for o in optimizers
        if (p, o, s) not in finished
    ]
    # f_star first, in this process: the surrogate's estimate is a search of its own.
    f_stars = {p: get_problem(p).f_star for p in problems}
    started = time.monotonic()

    def expired() -> bool:
        return deadline_s is not None and time.monotonic() - started > deadline_s

    results: list[RunResult] = []

    def record(result: RunResult) -> None:
        results.append(result)
        if on_rows:
            on_rows(rows_of(result, budgets, f_stars[result.job.problem]))
        if progress:
            progress(result, len(results), len(grid))

    if jobs <= 1:
        warm_up(optimizers)
        for job in grid:
            if expired():
                break
            record(run_job(job))
    else:
        # spawn: workers start clean of this process's threads and BLAS state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_init_worker, initargs=(list(optimizers),)
        ) as pool:
            queue = iter(grid)
            running = set()
            for job in itertools.islice(queue, 2 * jobs):
                running.add(pool.submit(run_job, job))
            while running:
                finished_now, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished_now:
                    record(future.result())
                    if not expired():
                        running |= {pool.submit(run_job, j) for j in itertools.islice(queue, 1)}
    rows = [r for r in done if (r["problem"], r["optimizer"], int(r["seed"])) in finished]
    for result in results:
        rows += rows_of(result, budgets, f_stars[result.job.problem])
    return balanced(rows, problems, optimizers, seed_list)


def completed_runs(
    rows: Iterable[dict[str, Any]], budgets: Sequence[int]
) -> set[tuple[str, str, int]]:
    """(problem, optimiser, seed) whose rows cover exactly ``budgets``."""
    seen: dict[tuple[str, str, int], set[int]] = {}
    for row in rows:
        key = (str(row["problem"]), str(row["optimizer"]), int(row["seed"]))
        seen.setdefault(key, set()).add(int(row["budget"]))
    return {key for key, got in seen.items() if got == set(budgets)}


def balanced(
    rows: Iterable[dict[str, Any]],
    problems: Sequence[str],
    optimizers: Sequence[str],
    seeds: Iterable[int],
) -> list[dict[str, Any]]:
    """Rows of the seeds that finished for every problem and optimiser, sorted by key."""
    wanted = set(seeds)
    keep = [
        r
        for r in rows
        if r["problem"] in problems and r["optimizer"] in optimizers and int(r["seed"]) in wanted
    ]
    runs: dict[int, set[tuple[str, str]]] = {}
    for r in keep:
        runs.setdefault(int(r["seed"]), set()).add((r["problem"], r["optimizer"]))
    per_seed = len(set(problems)) * len(set(optimizers))
    complete = {s for s, got in runs.items() if len(got) == per_seed}
    keep = [r for r in keep if int(r["seed"]) in complete]
    keep.sort(key=lambda r: (r["problem"], r["optimizer"], int(r["seed"]), int(r["budget"])))
    return keep


def merge_rows(sources: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Rows of several grids as one, sorted by key, so that cheap optimisers can run on
    more seeds than slow ones; a (problem, optimiser, seed, budget) in two sources is an
    error that names both, since keeping either would silently pick a run."""
    seen: dict[tuple[str, str, int, int], str] = {}
    merged = []
    for source, rows in sources:
        for row in rows:
            key = (str(row["problem"]), str(row["optimizer"]), int(row["seed"]), int(row["budget"]))
            if key in seen:
                problem, optimizer, seed, budget = key
                raise ValueError(
                    f"{source}: {problem} {optimizer} seed {seed} budget {budget} is also in "
                    f"{seen[key]}"
                )
            seen[key] = source
            merged.append(row)
    merged.sort(key=lambda r: (r["problem"], r["optimizer"], int(r["seed"]), int(r["budget"])))
    return merged


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows written by ``write_csv``/``append_csv``, typed back; empty if there is no file."""
    if not path.exists():
        return []
    rows = []
    with path.open(newline="") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = dict(raw)
            for key in ("seed", "budget", "evaluations"):
                row[key] = int(row[key])
            for key in ("best_value", "best_true", "f_star", "simple_regret", "wall_s"):
                row[key] = float(row[key]) if row[key] != "" else math.nan
            rows.append(row)
    return rows


def append_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Add rows to a checkpoint CSV, writing the header if it is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS))
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row[k]) for k in CSV_COLUMNS})


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row[k]) for k in CSV_COLUMNS})

"""How much do short runs' results in the optimiser benchmark depend on their being cheap?

The benchmark charges a run at fidelity 1/9 a ninth of a full one. A real trial
also pays a fixed cost whatever its length: applying the config (a reload or
a restart) and the workload's warm-up. On the PostgreSQL sandbox with 20 s
trials that is about 3.3 s, 0.17 of the measuring time (``results/
multifidelity.md``: the GP ran 18 full trials in 7 minutes), so a 1/9 run
costs about 0.24 of a full one, not 0.11.

This re-reads the competitors that run short trials, Hyperband and ``auto``
(whose opening screen is Hyperband's), with each evaluation charged
``evaluation_cost(fidelity, overhead)``: a full-length run still costs 1, so
every other competitor's rows in ``results/optimizers.csv`` stand as they are.
Neither sees its budget, so one run per (optimiser, problem, seed) is read off
at every overhead; at overhead 0 the rows must equal the recorded ones, which
the script checks. Then the benchmark's own ``rank_table`` scores the field
again.

    python experiments/bench_trial_overhead.py --overheads 0,0.05,0.1,0.17,0.3

Writes results/trial_overhead.md.
"""

from __future__ import annotations

import argparse
import datetime
import math
import multiprocessing
import os
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from autotune.bench.report import FOCUS, rank_table

ROOT = Path(__file__).resolve().parent
BUDGET = 30
SUBJECTS = ("hyperband", "auto")


def run(job: tuple[str, str, int, tuple[float, ...]]) -> list[dict[str, Any]]:
    """One run, read off at budget 30 under each overhead."""
    from threadpoolctl import threadpool_limits

    from autotune.bench.competitors import Evaluator, run_autotune
    from autotune.bench.problems import get_problem
    from autotune.bench.runner import at_budget

    subject, problem_name, seed, overheads = job
    problem = get_problem(problem_name)
    ev = Evaluator(problem, seed)  # no overhead: the longest prefix any reading needs
    with threadpool_limits(1):
        run_autotune(subject, problem, seed, BUDGET, ev)
    rows = []
    for overhead in overheads:
        row = at_budget(ev.evaluations, BUDGET, overhead)
        rows.append(
            {
                "overhead": overhead,
                "problem": problem_name,
                "optimizer": subject,
                "seed": seed,
                "budget": BUDGET,
                "evaluations": row.evaluations,
                "best_true": row.best_true,
                "simple_regret": max(0.0, row.best_true - problem.f_star),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overheads", default="0,0.05,0.1,0.17,0.3")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--reference", type=Path, default=ROOT / "results" / "optimizers_seeds0-19.csv"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "trial_overhead.md")
    args = parser.parse_args()
    overheads = tuple(sorted({float(x) for x in args.overheads.split(",")} | {0.0}))
    if min(overheads) < 0:
        parser.error(f"--overheads must be non-negative, got {args.overheads!r}")
    reference = pd.read_csv(args.reference)
    reference = reference[reference.budget == BUDGET]
    recorded = reference[reference.optimizer.isin(SUBJECTS)]
    jobs = [
        (o, p, int(s), overheads)
        for o, p, s in zip(recorded.optimizer, recorded.problem, recorded.seed, strict=True)
    ]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        rows = pd.DataFrame([r for rs in pool.map(run, jobs, chunksize=1) for r in rs])
    # At no overhead this must be the benchmark's own run, row for row.
    again = rows[rows.overhead == 0].set_index(["optimizer", "problem", "seed"]).sort_index()
    want = recorded.set_index(["optimizer", "problem", "seed"]).sort_index()
    mismatch = [
        key
        for key in want.index
        if not math.isclose(again.loc[key, "best_true"], want.loc[key, "best_true"], rel_tol=1e-9)
    ]
    if mismatch:
        raise SystemExit(f"runs differ from {args.reference}: {mismatch[:5]}")
    field = reference[~reference.optimizer.isin(SUBJECTS)]
    problems = sorted(set(reference.problem))
    lines = [
        "# The benchmark with a fixed cost per trial",
        "",
        f"Written {datetime.datetime.now().isoformat(timespec='minutes')} on "
        f"{platform.machine()}, {os.cpu_count()} CPUs, by `python experiments/"
        f"bench_trial_overhead.py --overheads {args.overheads}`. Budget {BUDGET}, the "
        f"{len(set(recorded.seed))} seeds of `{args.reference.name}`; only "
        + " and ".join(f"`{s}`" for s in SUBJECTS)
        + " run short trials, so only their rows change. Overhead is the fixed cost of a "
        "trial as a share of a full-length run's measuring time; a run at fidelity φ "
        "costs (φ + overhead) / (1 + overhead). At overhead 0 the rows equal the recorded "
        "ones (checked).",
        "",
        "Cells: the optimiser's median regret (its rank among the 12; `*` tied-best). "
        f"Last columns: on how many problems `{FOCUS}` is best or tied-best, and where not.",
    ]
    ranked = {}
    for overhead in overheads:
        mine = rows[rows.overhead == overhead].drop(columns="overhead")
        ranked[overhead] = (mine, rank_table(pd.concat([field, mine])))
    for subject in SUBJECTS:
        lines += [
            "",
            f"## `{subject}`",
            "",
            "| overhead | cost of a 1/9 run | evaluations (median) | "
            + " | ".join(problems)
            + f" | `{FOCUS}` tied-best | `{FOCUS}` misses |",
            "|" + "---|" * (len(problems) + 5),
        ]
        for overhead in overheads:
            mine, ranks = ranked[overhead]
            cells = []
            for problem in problems:
                r = ranks[(ranks.problem == problem) & (ranks.optimizer == subject)].iloc[0]
                cells.append(f"{r.median_regret:.3g} ({r['rank']}){'*' if r.tied_best else ''}")
            focus = ranks[ranks.optimizer == FOCUS]
            misses = sorted(focus[~focus.tied_best].problem)
            cost = (1 / 9 + overhead) / (1 + overhead)
            evaluations = mine[mine.optimizer == subject].evaluations.median()
            lines.append(
                f"| {overhead:g} | {cost:.2f} | {evaluations:g} | "
                + " | ".join(cells)
                + f" | {int(focus.tied_best.sum())}/{len(focus)} | {', '.join(misses) or '—'} |"
            )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""autotune bench optimizers | report | latency | export-recorded"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from autotune.cli._common import fail

app = typer.Typer(
    help="Benchmarks: optimisers against each other on test problems, suggestion latency.",
    no_args_is_help=True,
)

BudgetOption = Annotated[
    list[int] | None,
    typer.Option(
        "--budget",
        help="Evaluations per run; repeat for several (each run goes once, to the largest). "
        "Default: 30 and 60.",
        show_default=False,
    ),
]


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _command() -> str:
    """The command line as typed: `autotune ...`, or `python SCRIPT ...` for the
    experiments/ scripts that call these commands."""
    if not sys.argv:
        return "autotune"
    if Path(sys.argv[0]).name == "autotune":
        return shlex.join(["autotune", *sys.argv[1:]])
    return shlex.join(["python", *sys.argv])


def _versions() -> str:
    return ", ".join(
        f"{p} {_version(p)}" for p in ("scikit-learn", "scikit-optimize", "optuna", "smac")
    )


def _problem_facts(names: list[str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """What the table shows of each problem, and the problems its summary counts."""
    from autotune.bench.problems import get_problem, is_counted

    facts = {}
    for name in names:
        problem = get_problem(name)
        facts[name] = {
            "description": problem.description,
            "f_star": f"{problem.f_star:.6g}" + ("" if problem.f_star_exact else " (estimate)"),
            "noise": f"{problem.noise_sd:g}" if problem.noise_sd else "0",
        }
        if "r2" in problem.extra:
            facts[name]["fit"] = f"R² {problem.extra['r2']:.2f} (5-fold CV)"
    return facts, [name for name in names if is_counted(get_problem(name))]


def _definitions(largest_budget: int, some_not_counted: bool) -> list[str]:
    from autotune.bench.problems import MIN_R2

    lines = [
        "Simple regret = true (noise-free) loss of the config with the best observed "
        "full-fidelity value, minus f*. Every run starts with the baseline (the spec's "
        "defaults; skopt gets it with special values clamped into bounds). Each "
        f"run goes once to {largest_budget} evaluations and is read off at smaller budgets, "
        "which is sound because no optimiser here adapts to the total budget."
    ]
    if some_not_counted:
        lines.append(
            f"A surrogate whose forest predicts held-out trials with R² under {MIN_R2} is "
            "shown, not counted in the summary."
        )
    return lines


def optimizers(
    budget: BudgetOption = None,
    seeds: Annotated[int, typer.Option(help="How many seeds for every run.")] = 20,
    first_seed: Annotated[
        int,
        typer.Option(
            help="The first seed (seeds first..first+N-1). Settings were chosen on 0-19: "
            "give 1000 for the held-out block 1000-1019."
        ),
    ] = 0,
    problems: Annotated[
        str | None, typer.Option(help="Comma-separated problems. Default: all.")
    ] = None,
    optimizers: Annotated[
        str | None,
        typer.Option(
            "--optimizers",
            help="Comma-separated optimisers. Default: every registered autotune optimiser "
            "plus skopt-gp_minimize, optuna-tpe, optuna-tpe-uni, optuna-gp, smac3-hpo, "
            "smac3-bb and smac3-mf where they import.",
        ),
    ] = None,
    jobs: Annotated[int, typer.Option(help="Runs in parallel (processes).")] = 2,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            help="Time box: start no run after this many minutes and keep only the seeds "
            "that finished for every problem and optimiser."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Keep the runs already in the checkpoint (OUT with .partial.csv) and run "
            "only the rest."
        ),
    ] = False,
    out: Annotated[
        Path, typer.Option(help="The CSV of every run; the table goes beside it as .md.")
    ] = Path("experiments/results/optimizers.csv"),
) -> None:
    """Run optimisers side by side on synthetic and database-surrogate problems.

    Writes one CSV row per (problem, optimiser, seed, budget) and a markdown
    table of median regret, ratio to random and rank next to it.
    """
    from autotune.bench.competitors import EXTERNAL, competitor_names, unavailable
    from autotune.bench.problems import PROBLEMS, get_problem
    from autotune.bench.report import markdown, write_markdown
    from autotune.bench.runner import RunResult, append_csv, read_csv, run_grid, write_csv

    budgets = sorted(set(budget or [30, 60]))
    if min(budgets) < 1 or seeds < 1 or jobs < 1:
        fail("--budget, --seeds and --jobs must be at least 1")
    if first_seed < 0:
        fail(f"--first-seed {first_seed}: seeds are 0 or more")
    problem_names = _split(problems) or list(PROBLEMS)
    for name in problem_names:
        if name not in PROBLEMS:
            fail(f"unknown problem {name!r}; choose from {', '.join(PROBLEMS)}")
    names = _split(optimizers) or competitor_names()
    for name in names:
        reason = unavailable(name)
        if reason is not None:
            fail(f"optimizer {name!r}: {reason}; available: {', '.join(competitor_names())}")
    missing = [f"`{n}` ({unavailable(n)})" for n in EXTERNAL if n not in names and unavailable(n)]
    try:
        for name in problem_names:
            get_problem(name)
    except (OSError, ValueError) as exc:
        fail(str(exc))

    def progress(result: RunResult, done: int, total: int) -> None:
        job = result.job
        status = f"error: {result.error}" if result.error else f"{result.wall_s:.1f} s"
        typer.echo(
            f"[{done}/{total}] {job.problem} {job.optimizer} seed {job.seed}: {status}", err=True
        )

    started, load = datetime.now(UTC), os.getloadavg()[0]
    deadline = None if max_minutes is None else max_minutes * 60
    checkpoint = out.with_suffix(".partial.csv")
    try:
        earlier = read_csv(checkpoint) if resume else []
    except (OSError, KeyError, ValueError) as exc:
        fail(f"{checkpoint}: not a benchmark checkpoint ({exc}); remove it or drop --resume")
    if not resume:
        checkpoint.unlink(missing_ok=True)
    rows = run_grid(
        problem_names,
        names,
        range(first_seed, first_seed + seeds),
        budgets,
        jobs,
        progress,
        deadline_s=deadline,
        done=earlier,
        on_rows=lambda new: append_csv(new, checkpoint),
    )
    if not rows:
        fail(
            "the time box ended before one seed finished for every problem and optimiser; "
            f"finished runs are kept in {checkpoint} for --resume"
        )
    write_csv(rows, out)
    done_seeds = sorted({int(r["seed"]) for r in rows})
    if len(done_seeds) == seeds:
        checkpoint.unlink(missing_ok=True)
    else:
        typer.echo(f"finished runs are kept in {checkpoint}; add --resume to go on", err=True)

    import pandas as pd

    df = pd.read_csv(out, keep_default_na=False, na_values=[""])
    facts, counted = _problem_facts(problem_names)
    preamble = [
        f"Command: `{_command()}` ({started:%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, load average "
        f"{load:.1f} at the start). "
        f"Libraries: {_versions()}.",
        "",
        f"Optimisers: {', '.join(f'`{n}`' for n in names)}; seeds {done_seeds[0]}–{done_seeds[-1]}"
        + (
            f" (a {max_minutes:g}-minute time box ended the run after {len(done_seeds)} of "
            f"{seeds} seeds)"
            if len(done_seeds) < seeds
            else ""
        )
        + "; "
        f"budgets {', '.join(map(str, budgets))} evaluations. "
        + (f"Not run: {'; '.join(missing)}." if missing else ""),
        "",
        *_definitions(max(budgets), len(counted) < len(problem_names)),
    ]
    text = markdown(df, facts, preamble, counted=counted)
    table = out.with_suffix(".md")
    write_markdown(text, table)
    typer.echo(f"wrote {out} ({len(rows)} rows) and {table}")


def latency(
    optimizer: Annotated[
        str, typer.Option(help="Optimiser to time (auto falls back to gp if missing).")
    ] = "auto",
    sizes: Annotated[str, typer.Option(help="Comma-separated history sizes.")] = "100,1000,5000",
    repeats: Annotated[int, typer.Option(help="Timed suggestions per size.")] = 20,
    timeout: Annotated[float, typer.Option(help="Seconds allowed per size.")] = 3600.0,
    rounds: Annotated[
        int, typer.Option(help="Children per size, sizes interleaved; the report takes medians.")
    ] = 5,
    out: Annotated[Path, typer.Option(help="Markdown report.")] = Path(
        "experiments/results/latency.md"
    ),
) -> None:
    """Time ask(1) after N observations on a 20-knob space; report p50/p95 and peak memory."""
    from autotune.bench.latency import run_latency, write

    try:
        ns = [int(s) for s in _split(sizes) or []]
        result = run_latency(optimizer, ns, repeats, timeout, rounds)
    except ValueError as exc:
        fail(str(exc))
        return
    write(result, out, _command())
    typer.echo(out.read_text(), nl=False)


def export_recorded(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    store: Annotated[str, typer.Option(help="Results store URL holding the experiment.")],
    out: Annotated[
        Path | None, typer.Option(help="Default: experiments/recorded/NAME.json.")
    ] = None,
) -> None:
    """Write an experiment for the benchmark's database surrogate, as `autotune export` does.

    The file is the versioned export format (format version 1): the experiment with
    its spec, settings (knobs, machine) and every trial.
    """
    from autotune.bench import problems
    from autotune.cli._common import open_store
    from autotune.store import StoreError, export_experiment, write_export

    path = out or problems.RECORDED_DIR / f"{name}.json"
    try:
        with open_store(store) as st:
            doc = export_experiment(st, name)
        write_export(doc, path)
    except StoreError as exc:
        fail(str(exc))
        return
    typer.echo(f"wrote {len(doc['trials'])} trials to {path}")


def report(
    sources: Annotated[
        list[Path], typer.Argument(help="CSVs written by `autotune bench optimizers`.")
    ],
    out: Annotated[
        Path, typer.Option(help="The merged CSV; the table goes beside it as .md.")
    ] = Path("experiments/results/optimizers.csv"),
    note: Annotated[
        list[str] | None,
        typer.Option("--note", help="A paragraph for the table's preamble (repeatable)."),
    ] = None,
) -> None:
    """Merge grids run separately (say, slow optimisers on fewer seeds) into one table.

    Each optimiser keeps the seeds it ran; the per-problem tables give its runs.
    """
    import pandas as pd

    from autotune.bench.problems import PROBLEMS
    from autotune.bench.report import markdown, write_markdown
    from autotune.bench.runner import merge_rows, read_csv, write_csv

    if out.resolve() in {s.resolve() for s in sources}:
        fail(f"--out {out}: is one of the sources; write the merge elsewhere")
    loaded = []
    for source in sources:
        if not source.exists():
            fail(f"{source}: no such file")
        try:
            loaded.append((str(source), read_csv(source)))
        except (KeyError, ValueError) as exc:
            fail(f"{source}: not a benchmark CSV ({exc})")
    try:
        rows = merge_rows(loaded)
    except ValueError as exc:
        fail(str(exc))
        return
    if not rows:
        fail(f"{', '.join(map(str, sources))}: no rows")
    present = {str(r["problem"]) for r in rows}
    unknown = sorted(present - set(PROBLEMS))
    if unknown:
        fail(f"unknown problem {unknown[0]!r} in the sources; choose from {', '.join(PROBLEMS)}")
    write_csv(rows, out)
    problem_names = [p for p in PROBLEMS if p in present]
    facts, counted = _problem_facts(problem_names)
    seeds: dict[str, set[int]] = {}
    for row in rows:
        seeds.setdefault(str(row["optimizer"]), set()).add(int(row["seed"]))
    budgets = sorted({int(r["budget"]) for r in rows})
    preamble = [
        f"Merged by `{shlex.join(['autotune', 'bench', 'report', *map(str, sources)])} "
        f"--out {shlex.quote(str(out))}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC). "
        f"Libraries: {_versions()}.",
        "",
        "Seeds per optimiser: "
        + "; ".join(f"`{o}` {_seed_span(sorted(s))}" for o, s in sorted(seeds.items()))
        + f"; budgets {', '.join(map(str, budgets))} evaluations.",
        "",
        *(line for text in note or [] for line in (text, "")),
        *_definitions(max(budgets), len(counted) < len(problem_names)),
    ]
    df = pd.read_csv(out, keep_default_na=False, na_values=[""])
    table = out.with_suffix(".md")
    write_markdown(markdown(df, facts, preamble, counted=counted), table)
    typer.echo(f"wrote {out} ({len(rows)} rows) and {table}")


def _seed_span(seeds: list[int]) -> str:
    if len(seeds) == 1:
        return f"{seeds[0]} (1)"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)})"
    return f"{', '.join(map(str, seeds))} ({len(seeds)})"


app.command("optimizers")(optimizers)
app.command("report")(report)
app.command("latency")(latency)
app.command("export-recorded")(export_recorded)

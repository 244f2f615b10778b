"""Hyperband against the plain GP on real PostgreSQL, at the same wall-clock budget.

For each tuning seed, each optimiser tunes pgbench-tpcb on its own managed
sandbox for the same number of minutes (``autotune tune --time-budget``; the
order of the two alternates by seed); hyperband screens with short runs (1/9
and 1/3 of the full duration), the GP runs every trial at full length. Then
every best and the default config are measured again on one fresh sandbox,
interleaved in rotating order (``autotune.replay.run_interleaved``), and
compared by medians with 95% bootstrap CIs. Runs of one round are paired:
hyperband's and the GP's bests are compared by per-round ratios, which cancel
the host's drift between rounds.

    python experiments/bench_multifidelity.py --minutes 7 --duration 20 --seeds 3 --repeats 7

Writes experiments/results/multifidelity.md and the raw verification runs to
multifidelity_runs.csv. Takes about 2 x seeds x (minutes + 1) + the
verification ((1 + 2 x seeds) x repeats x (duration + ~6 s)).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autotune._resources import resolve
from autotune.agent import Agent
from autotune.replay import run_interleaved
from autotune.spec import Config, Machine, load_spec
from autotune.store import Store
from autotune.systems.postgres import PostgresSystem, Sandbox
from autotune.tuner import Arm, VerifyPolicy, bootstrap_ratio_ci, paired_ratio_ci
from autotune.tuner import VerifyRun as Run
from autotune.workloads import load_workload, make_workload

ROOT = Path(__file__).resolve().parent
OPTIMISERS = ("gp", "hyperband")


def tune(optimizer: str, seed: int, minutes: float, duration: float, store: str, name: str) -> None:
    cmd = [
        sys.executable, "-m", "autotune", "tune",
        "--system", "postgres", "--workload", "pgbench-tpcb", "--knobs", "group:oltp",
        "--optimizer", optimizer, "--trials", "1000", "--repeats", "0",
        "--time-budget", str(minutes * 60), "--duration", str(duration),
        "--experiment", name, "--store", store, "--seed", str(seed),
    ]  # fmt: skip
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def full_length_best(store: Store, name: str) -> tuple[Config, float, int, int]:
    """The best full-fidelity trial: config, tps, trials run, trials at full length."""
    experiment = store.require_experiment(name)
    trials = store.trials(experiment)
    full = [t for t in trials if t.status == "ok" and t.fidelity >= 1.0 and t.objective]
    best = max(full, key=lambda t: float(t.objective or 0))
    return best.config, float(best.objective or 0), len(trials), len(full)


def verify(arms: list[Arm], duration: float, repeats: int) -> list[Run]:
    spec = load_spec(resolve("knobs", "postgres"), Machine.local())
    workload = make_workload(load_workload(resolve("workloads", "pgbench-tpcb")))
    agent = Agent(PostgresSystem(spec, sandbox=Sandbox()), workload, duration)
    agent.start()
    try:
        # Every run starts from the freshly loaded data, settled (the agent's reset and
        # settle phases); the runs recorded before those phases existed had one untimed
        # settling run instead.
        runs, _ = run_interleaved(
            agent,
            spec,
            arms,
            VerifyPolicy(min_rounds=repeats, max_rounds=repeats),
            "tps",
            "maximize",
            duration_s=duration,
            progress=lambda run, _: (
                run and print(f"round {run.round} {run.arm}: {run.value} tps", flush=True)
            ),
        )
        return runs
    finally:
        agent.stop()


def seeds_of(args: argparse.Namespace) -> range:
    return range(args.first_seed, args.first_seed + args.seeds)


def by_round(runs: list[Run], label: str, rounds: int) -> np.ndarray:
    """One value per round (NaN for a failed run), so arms pair by round."""
    out = np.full(rounds, np.nan)
    for run in runs:
        if run.arm == label and run.value is not None:
            out[run.round - 1] = run.value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=7.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--seeds", type=int, default=3, help="tuning seeds per optimiser")
    parser.add_argument("--first-seed", type=int, default=1, help="seeds run from this one up")
    parser.add_argument("--repeats", type=int, default=7, help="verification rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "multifidelity.md")
    parser.add_argument(
        "--pool",
        type=Path,
        nargs="+",
        metavar="RUNS_CSV",
        help="no tuning: pool the per-seed results of earlier runs (their *_runs.csv)",
    )
    args = parser.parse_args()
    if args.pool:
        pool(args.pool, args.out)
        return
    workdir = Path(tempfile.mkdtemp(prefix="autotune-mf-"))
    try:
        store_url = f"sqlite:///{workdir / 'store.db'}"
        stamp = datetime.datetime.now().strftime("%Y%m%d%H%M")
        started = time.time()
        names: dict[tuple[str, int], str] = {}
        for seed in seeds_of(args):
            order = OPTIMISERS if seed % 2 else OPTIMISERS[::-1]
            for o in order:
                names[o, seed] = f"mf-{o}-s{seed}-{stamp}"
                tune(o, seed, args.minutes, args.duration, store_url, names[o, seed])
        store = Store(store_url)
        bests = {key: full_length_best(store, name) for key, name in names.items()}
        store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    arms = [Arm("default", {})] + [
        Arm(f"{o}-s{seed}", bests[o, seed][0]) for seed in seeds_of(args) for o in OPTIMISERS
    ]
    runs = verify(arms, args.duration, args.repeats)
    write(args, arms, runs, bests, time.time() - started)


def read_runs(path: Path) -> list[Run]:
    with open(path, newline="") as f:
        return [
            Run(int(r["round"]), r["label"], float(r["tps"]) if r["tps"] else None)
            for r in csv.DictReader(f)
        ]


def pool(paths: list[Path], out: Path, resamples: int = 10_000) -> None:
    """Hyperband / GP over every tuning seed of several runs: a bootstrap over seeds.

    Each run's CI covers only the measurement noise of its few pairs of bests;
    whether Hyperband's bests are better is a question about the spread of
    tuning outcomes, so the seed is the unit here.
    """
    rows: list[tuple[str, int, float, float, float]] = []
    for path in paths:
        runs = read_runs(path)
        rounds = max(r.round for r in runs)
        seeds = sorted({int(r.arm.rsplit("-s", 1)[1]) for r in runs if r.arm != "default"})
        for seed in seeds:
            hb, gp = (by_round(runs, f"{o}-s{seed}", rounds) for o in ("hyperband", "gp"))
            rows.append((path.name, seed, *paired_ratio_ci(hb, gp)))
    logs = np.log([r[2] for r in rows])
    rng = np.random.default_rng(0)
    means = rng.choice(logs, size=(resamples, len(logs))).mean(axis=1)
    low, high = np.exp(np.percentile(means, [2.5, 97.5]))
    geo = float(np.exp(logs.mean()))
    lines = [
        "# Multi-fidelity on real PostgreSQL: all tuning seeds",
        "",
        f"Written {datetime.datetime.now().isoformat(timespec='minutes')} by "
        "`python experiments/bench_multifidelity.py --pool "
        + " ".join(str(p) for p in paths)
        + f" --out {out}`. Each row is one tuning seed: Hyperband's and the "
        "GP's bests from the same run, verified in the same rotating rounds, as the median "
        "of per-round ratios with its bootstrap CI over rounds.",
        "",
        "| runs file | seed | hyperband / gp (95% CI) |",
        "|---|---|---|",
        *(f"| {name} | {seed} | {r:.3f} ({lo:.3f}–{hi:.3f}) |" for name, seed, r, lo, hi in rows),
        "",
        f"Over {len(rows)} seeds: geometric mean **{geo:.3f}** "
        f"(median {np.exp(np.median(logs)):.3f}); "
        f"95% bootstrap CI over seeds {low:.3f}–{high:.3f} ({resamples} resamples). "
        f"Significantly better on {sum(r[3] > 1 for r in rows)} seeds, significantly worse "
        f"on {sum(r[4] < 1 for r in rows)}.",
    ]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def write(
    args: argparse.Namespace,
    arms: list[Arm],
    runs: list[Run],
    bests: dict[tuple[str, int], tuple[Config, float, int, int]],
    wall_s: float,
) -> None:
    rounds = args.repeats
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_name(args.out.stem + "_runs.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "label", "status", "tps"])
        for run in runs:
            status = "ok" if run.value is not None else "failed"
            w.writerow([run.round, run.arm, status, run.value or ""])
    command = (
        f"python experiments/bench_multifidelity.py --minutes {args.minutes:g} "
        f"--duration {args.duration:g} --seeds {args.seeds} --repeats {rounds}"
        + (f" --first-seed {args.first_seed}" if args.first_seed != 1 else "")
    )
    lines = [
        "# Multi-fidelity on real PostgreSQL: hyperband vs GP at the same wall-clock budget",
        "",
        f"Run {datetime.datetime.now().isoformat(timespec='minutes')} on {platform.node()}, "
        f"{os.cpu_count()} CPUs, PostgreSQL 15 managed sandbox, pgbench-tpcb (scale 10), "
        f"knobs group:oltp. Command: `{command}` ({wall_s / 60:.0f} min in all).",
        "",
        f"Each optimiser had {args.minutes:g} minutes of tuning (`--time-budget`) per seed, "
        f"seeds {args.first_seed}–{args.first_seed + args.seeds - 1}, each on a fresh sandbox. "
        "Full-length trials measure "
        f"{args.duration:g} s; hyperband's rungs are 1/9, 1/3 and 1 of that. The best of a "
        "tuning run is its best single full-length trial.",
        "",
        "| optimiser | seed | trials run | at full length | best full-length tps during tuning |",
        "|---|---|---|---|---|",
    ]
    for (o, seed), (_, tps, n, full) in sorted(bests.items(), key=lambda kv: kv[0][::-1]):
        lines.append(f"| {o} | {seed} | {n} | {full} | {tps:.1f} |")
    default = by_round(runs, "default", rounds)
    lines += [
        "",
        f"## Verification: {rounds} rounds of every best and the default on one fresh sandbox",
        "",
        "The order rotates each round. Unpaired: ratio of medians "
        "with its bootstrap CI. Paired: median of per-round ratios with its bootstrap CI.",
        "",
        "| config | runs (tps) | median | vs default, unpaired (95% CI) "
        "| vs default, paired (95% CI) |",
        "|---|---|---|---|---|",
    ]
    for arm in arms:
        mine = by_round(runs, arm.label, rounds)
        unpaired = paired = ""
        if arm.label != "default":
            ratio, low, high = bootstrap_ratio_ci(mine, default)
            unpaired = f"{ratio:.3f} ({low:.3f}–{high:.3f})"
            r, lo, hi = paired_ratio_ci(mine, default)
            paired = f"{r:.3f} ({lo:.3f}–{hi:.3f})"
        values = ", ".join(f"{x:.0f}" for x in mine)
        ok = mine[~np.isnan(mine)]
        median = f"{np.median(ok):.1f}" if ok.size else "—"
        lines.append(f"| {arm.label} | {values} | {median} | {unpaired} | {paired} |")
    lines += [
        "",
        "## hyperband / gp, paired by round",
        "",
        "| seed | ratio (95% CI) |",
        "|---|---|",
    ]
    for seed in seeds_of(args):
        r, lo, hi = paired_ratio_ci(
            by_round(runs, f"hyperband-s{seed}", rounds), by_round(runs, f"gp-s{seed}", rounds)
        )
        lines.append(f"| {seed} | {r:.3f} ({lo:.3f}–{hi:.3f}) |")
    # All seeds: per round, the geometric mean over seeds of each optimiser's bests.
    geo = {
        o: np.exp(
            np.mean(
                [np.log(by_round(runs, f"{o}-s{s}", rounds)) for s in seeds_of(args)],
                axis=0,
            )
        )
        for o in OPTIMISERS
    }
    r, lo, hi = paired_ratio_ci(geo["hyperband"], geo["gp"])
    verdict = (
        "hyperband's bests are significantly better"
        if lo > 1
        else "hyperband's bests are significantly worse"
        if hi < 1
        else "no significant difference (the CI includes 1)"
    )
    lines += [
        "",
        f"**All {args.seeds} seeds (per round, geometric mean over seeds): hyperband / gp "
        f"{r:.3f} (95% bootstrap CI {lo:.3f}–{hi:.3f}): {verdict}.** The CI covers the "
        f"measurement noise of these {args.seeds} pairs of bests, not the spread of tuning "
        "outcomes over other seeds.",
        "",
        "Bests:",
        "",
    ]
    for (o, seed), (config, *_rest) in sorted(bests.items(), key=lambda kv: kv[0][::-1]):
        lines.append(f"- {o}, seed {seed}: `{config}`")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

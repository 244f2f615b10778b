"""Hyperband against the plain GP on real PostgreSQL, at the same wall-clock budget.

Each optimiser tunes pgbench-tpcb on its own managed sandbox for the same
number of minutes (``autotune tune --time-budget``); hyperband screens with
short runs (1/9 and 1/3 of the full duration), the GP runs every trial at full
length. Then both bests and the default config are measured again on one
fresh sandbox, interleaved (D G H D G H ...), and compared by medians with a
95% bootstrap CI of each ratio.

    python experiments/bench_multifidelity.py --minutes 12 --duration 20 --repeats 6

Writes experiments/results/multifidelity.md. Takes about 2 x minutes + the
verification (3 x repeats x (duration + ~5 s)).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autotune._resources import resolve
from autotune.agent import Agent
from autotune.spec import Config, Machine, load_spec
from autotune.store import Store
from autotune.systems.postgres import PostgresSystem, Sandbox
from autotune.tuner import bootstrap_ratio_ci
from autotune.workloads import load_workload, make_workload

ROOT = Path(__file__).resolve().parent
OPTIMISERS = ("gp", "hyperband")


def tune(optimizer: str, minutes: float, duration: float, store: str, name: str) -> None:
    cmd = [
        sys.executable, "-m", "autotune", "tune",
        "--system", "postgres", "--workload", "pgbench-tpcb", "--knobs", "group:oltp",
        "--optimizer", optimizer, "--trials", "1000", "--repeats", "0",
        "--time-budget", str(minutes * 60), "--duration", str(duration),
        "--experiment", name, "--store", store, "--seed", "1",
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


def verify(configs: dict[str, Config], duration: float, repeats: int) -> dict[str, list[float]]:
    spec = load_spec(resolve("knobs", "postgres"), Machine.local())
    workload = make_workload(load_workload(resolve("workloads", "pgbench-tpcb")))
    agent = Agent(PostgresSystem(spec, sandbox=Sandbox()), workload, duration)
    results: dict[str, list[float]] = {label: [] for label in configs}
    agent.start()
    try:
        # Settle: one untimed run lets autovacuum and the first checkpoint after
        # the data load pass before anything is measured.
        agent.run_trial(next(iter(configs.values())))
        for r in range(repeats):
            for label, config in configs.items():
                outcome = agent.run_trial(config)
                tps = (
                    float(outcome.metrics.get("tps", "nan"))
                    if outcome.status == "ok"
                    else float("nan")
                )
                results[label].append(tps)
                print(f"repeat {r + 1} {label}: {tps:.1f} tps", flush=True)
    finally:
        agent.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "multifidelity.md")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="autotune-mf-"))
    store_url = f"sqlite:///{workdir / 'store.db'}"
    stamp = datetime.datetime.now().strftime("%Y%m%d%H%M")
    started = time.time()
    for optimizer in OPTIMISERS:
        tune(optimizer, args.minutes, args.duration, store_url, f"mf-{optimizer}-{stamp}")
    store = Store(store_url)
    bests = {o: full_length_best(store, f"mf-{o}-{stamp}") for o in OPTIMISERS}
    defaults = load_spec(resolve("knobs", "postgres"), Machine.local())
    default = {k: defaults.knobs[k].default for k in bests["gp"][0]}
    configs = {"default": default, **{o: bests[o][0] for o in OPTIMISERS}}
    results = verify(configs, args.duration, args.repeats)
    write(args, results, bests, time.time() - started)


def write(
    args: argparse.Namespace,
    results: dict[str, list[float]],
    bests: dict[str, tuple[Config, float, int, int]],
    wall_s: float,
) -> None:
    lines = [
        "# Multi-fidelity on real PostgreSQL: hyperband vs GP at the same wall-clock budget",
        "",
        f"Run {datetime.datetime.now().isoformat(timespec='minutes')} on {platform.node()}, "
        f"{os.cpu_count()} CPUs, PostgreSQL 15 managed sandbox, pgbench-tpcb (scale 10), "
        f"knobs group:oltp. Command: `python experiments/bench_multifidelity.py --minutes "
        f"{args.minutes:g} --duration {args.duration:g} --repeats {args.repeats}` "
        f"({wall_s / 60:.0f} min in all).",
        "",
        f"Each optimiser had {args.minutes:g} minutes of tuning (`--time-budget`), seed 1. "
        f"Full-length trials measure {args.duration:g} s; hyperband's rungs are 1/9, 1/3 "
        "and 1 of that.",
        "",
        "| optimiser | trials run | at full length | best full-length tps during tuning |",
        "|---|---|---|---|",
    ]
    for o, (_, tps, n, full) in bests.items():
        lines.append(f"| {o} | {n} | {full} | {tps:.1f} |")
    lines += [
        "",
        f"## Verification: interleaved repeats ({args.repeats} rounds of default, gp, hyperband "
        "on one fresh sandbox, after one settling run)",
        "",
        "| config | runs (tps) | median | ratio to default (95% CI) |",
        "|---|---|---|---|",
    ]
    base = np.array(results["default"])
    for label, values in results.items():
        v = np.array(values)
        ratio = ""
        if label != "default":
            r, lo, hi = bootstrap_ratio_ci(v, base, higher_is_better=True)
            ratio = f"{r:.3f} ({lo:.3f}–{hi:.3f})"
        runs = ", ".join(f"{x:.0f}" for x in v)
        lines.append(f"| {label} | {runs} | {np.nanmedian(v):.1f} | {ratio} |")
    r, lo, hi = bootstrap_ratio_ci(
        np.array(results["hyperband"]), np.array(results["gp"]), higher_is_better=True
    )
    verdict = (
        "hyperband's best is significantly better"
        if lo > 1
        else "hyperband's best is significantly worse"
        if hi < 1
        else "no significant difference (the CI includes 1)"
    )
    lines += [
        "",
        f"**hyperband / gp median tps: {r:.3f} (95% bootstrap CI {lo:.3f}–{hi:.3f}): {verdict}.**",
        "",
        "Bests:",
        "",
    ]
    for o, (config, *_rest) in bests.items():
        lines.append(f"- {o}: `{config}`")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

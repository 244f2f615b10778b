"""How precisely can one config be compared with another on this host, measure by measure?

For pgbench tpcb-like and select-only at two scales, the same config (the
defaults) runs as two arms, A and B, in rounds (A B, then B A, …), so any
difference between the arms is noise. Each measure of issue 17 is added in
turn (``setup``):

- ``plain``: as autotune ran trials before: the workload's warm-up, then the
  measured run, on whatever state earlier runs left;
- ``reset``: the data database replaced by its pristine copy before every run;
- ``reset+settle``: then a checkpoint, no autovacuum worker running, and every
  relation read into shared buffers (pg_prewarm) before the warm-up;
- ``reset+settle+paired``: the same runs as ``reset+settle``, compared per
  round (the ratio of A to B in each round) instead of as two groups;
- ``reset+settle+twin``: A and B at the same time on two identical sandboxes,
  the load alternating between them in slices of 3 s (``Agent.run_pair``,
  what a verification does on a managed sandbox), the two swapping roles
  every round; compared per round.

For each: ``cv``, the coefficient of variation of the block's runs of the one
config (both arms), and ``aa_ci_halfwidth``, the half-width of the 95% CI of
the A/B ratio: a t-interval on the logs, Welch's for two groups, the paired
one (``autotune.tuner.paired_ratio``, what verification uses) for the last.
Each figure is the median over ``--blocks`` independent blocks of
``--rounds`` rounds; the blocks take turns over the setups so the host's
drift over the hour falls on all of them.

    python experiments/bench_noise.py --scales 10,100 --rounds 5 --run-s 15 --blocks 2

Writes results/noise.csv (workload,scale,setup,rounds,run_s,cv,aa_ci_halfwidth),
results/noise_runs.csv (every run) and results/noise.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import platform
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from scipy import stats

from autotune.agent import Agent
from autotune.spec import load_spec
from autotune.systems.postgres import PostgresSystem, Sandbox
from autotune.tuner import paired_ratio
from autotune.workloads import make_workload, parse_workload

ROOT = Path(__file__).resolve().parent
SPEC = ROOT.parent / "knobs" / "postgres.yaml"
WORKLOAD = """
name: noise-{builtin}
system: postgres
kind: pgbench
builtin: {builtin}
scale: {scale}
clients: 8
threads: 2
duration: {run_s}s
warmup: 3s
reset: true
objective: {{metric: tps, direction: maximize}}
"""
BUILTINS = ("tpcb-like", "select-only")
SETUPS = {"plain": (False, False), "reset": (True, False), "reset+settle": (True, True)}
TWIN = "reset+settle+twin"  # both arms at once, on two sandboxes, in alternating slices
COLUMNS = ["workload", "scale", "setup", "rounds", "run_s", "cv", "aa_ci_halfwidth"]


def welch_halfwidth(a: list[float], b: list[float]) -> float:
    """Half-width of the 95% CI of mean(A)/mean(B), a Welch t-interval on the logs."""
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    va, vb = statistics.variance(la) / len(la), statistics.variance(lb) / len(lb)
    dof = (va + vb) ** 2 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1)) if va + vb else 1
    diff = statistics.fmean(la) - statistics.fmean(lb)
    half = float(stats.t.ppf(0.975, dof)) * math.sqrt(va + vb)
    return (math.exp(diff + half) - math.exp(diff - half)) / 2


def run_twin(
    agents: dict[str, Agent], rounds: int, run_s: float, block: int, scale: int
) -> list[dict[str, Any]]:
    """A beside B on a twin sandbox, sliced (Agent.run_pair); the instances swap roles
    every round, as a verification's do."""
    rows = []
    for builtin, agent in agents.items():
        agent.reset, agent.settle = True, True
        for r in range(rounds):
            t0 = time.monotonic()
            outcome = agent.run_pair({}, {}, duration_s=run_s, swap=r % 2 == 1)
            if outcome.status != "ok":
                raise SystemExit(f"{builtin} twin: run failed: {outcome.error}")
            wall = time.monotonic() - t0
            values = {"A": outcome.metrics["tps"], "B": outcome.metrics["reference.objective"]}
            for arm, tps in values.items():
                rows.append(
                    {
                        "workload": builtin,
                        "scale": scale,
                        "setup": TWIN,
                        "block": block,
                        "round": r + 1,
                        "arm": arm,
                        "tps": tps,
                        "wall_s": wall / 2,
                        "reset_s": outcome.timings.get("reset_s", 0.0) / 2,
                        "settle_s": outcome.timings.get("settle_s", 0.0) / 2,
                    }
                )
            print(
                f"scale {scale} block {block} {TWIN} {builtin:11} round {r + 1}: "
                f"{values['A']:.0f} beside {values['B']:.0f} tps",
                flush=True,
            )
    return rows


def run_block(
    agents: dict[str, Agent], setup: str, rounds: int, run_s: float, block: int, scale: int
) -> list[dict[str, Any]]:
    if setup == TWIN:
        return run_twin(agents, rounds, run_s, block, scale)
    reset, settle = SETUPS[setup]
    rows = []
    for builtin, agent in agents.items():
        agent.reset, agent.settle = reset, settle
        for r in range(rounds):
            for arm in "AB" if r % 2 == 0 else "BA":
                t0 = time.monotonic()
                outcome = agent.run_trial({}, duration_s=run_s)
                if outcome.status != "ok":
                    raise SystemExit(f"{builtin} {setup}: run failed: {outcome.error}")
                rows.append(
                    {
                        "workload": builtin,
                        "scale": scale,
                        "setup": setup,
                        "block": block,
                        "round": r + 1,
                        "arm": arm,
                        "tps": outcome.metrics["tps"],
                        "wall_s": time.monotonic() - t0,
                        "reset_s": outcome.timings.get("reset_s", 0.0),
                        "settle_s": outcome.timings.get("settle_s", 0.0),
                    }
                )
                print(
                    f"scale {scale} block {block} {setup:13} {builtin:11} round {r + 1} {arm}: "
                    f"{outcome.metrics['tps']:.0f} tps",
                    flush=True,
                )
    return rows


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """A row of noise_runs.csv back as the numbers it was written from."""
    out: dict[str, Any] = dict(row)
    for name in ("scale", "block", "round"):
        out[name] = int(row[name])
    for name in ("tps", "wall_s", "reset_s", "settle_s"):
        out[name] = float(row[name])
    return out


def figures(runs: list[dict[str, Any]], setups: list[str], rounds: int) -> list[dict[str, Any]]:
    """Per (workload, scale, setup): medians over blocks of cv and the A/A half-width."""
    out = []
    keys = sorted({(r["workload"], r["scale"]) for r in runs})
    for workload, scale in keys:
        shown = [x for x in setups if x != TWIN]
        if "reset+settle" in setups:
            shown.append("reset+settle+paired")
        if TWIN in setups:
            shown.append(TWIN)
        for setup in shown:
            source = "reset+settle" if setup == "reset+settle+paired" else setup
            mine = [
                r
                for r in runs
                if (r["workload"], r["scale"], r["setup"]) == (workload, scale, source)
            ]
            cvs, widths = [], []
            for block in sorted({r["block"] for r in mine}):
                rows = sorted((r for r in mine if r["block"] == block), key=lambda r: r["round"])
                values = [r["tps"] for r in rows]
                cvs.append(statistics.stdev(values) / statistics.fmean(values))
                a = [r["tps"] for r in rows if r["arm"] == "A"]
                b = [r["tps"] for r in rows if r["arm"] == "B"]
                if setup.endswith("paired") or setup == TWIN:
                    pr = paired_ratio(a, b)
                    widths.append(math.nan if pr is None else pr.half_width)
                else:
                    widths.append(welch_halfwidth(a, b))
            out.append(
                {
                    "workload": workload,
                    "scale": scale,
                    "setup": setup,
                    "rounds": rounds,
                    "cv": statistics.median(cvs),
                    "aa_ci_halfwidth": statistics.median(widths),
                    "blocks": len(cvs),
                    "widths": widths,
                    "wall_s": statistics.median(r["wall_s"] for r in mine),
                    "reset_s": statistics.median(r["reset_s"] for r in mine),
                    "settle_s": statistics.median(r["settle_s"] for r in mine),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="10,100")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--run-s", type=float, default=15.0)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--setups", default=",".join([*SETUPS, TWIN]))
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the runs of other setups already in noise_runs.csv (measured earlier)",
    )
    args = parser.parse_args()
    setups = args.setups.split(",")
    kept: list[dict[str, Any]] = []
    kept_note = ""
    if args.keep and (args.out / "noise_runs.csv").exists():
        with open(args.out / "noise_runs.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row["setup"] not in setups:
                    kept.append(_typed(row))
        earlier = (args.out / "noise.md").read_text().splitlines()
        kept_note = next((line for line in earlier if line.startswith("Measured ")), "")
    started = datetime.datetime.now(datetime.UTC)
    loads = [os.getloadavg()[0]]
    workdir = Path("/tmp") / f"autotune-noise-bench-{os.getpid()}"
    workdir.mkdir()
    workdir.chmod(0o755)
    spec = load_spec(SPEC)
    runs: list[dict[str, Any]] = []
    try:
        for scale in (int(s) for s in args.scales.split(",")):
            pg = PostgresSystem(spec, sandbox=Sandbox(root=workdir / "sandboxes"))
            agents = {}
            for builtin in BUILTINS:
                text = WORKLOAD.format(builtin=builtin, scale=scale, run_s=args.run_s)
                definition = parse_workload(text, workdir / f"{builtin}.yaml")
                agents[builtin] = Agent(pg, make_workload(definition), args.run_s)
            first = agents[BUILTINS[0]]
            try:
                t0 = time.monotonic()
                first.start()  # the sandbox, the load, the pristine copy: shared by both
                print(f"scale {scale}: loaded in {time.monotonic() - t0:.0f}s", flush=True)
                for block in range(1, args.blocks + 1):
                    for setup in setups:
                        runs += run_block(agents, setup, args.rounds, args.run_s, block, scale)
                        loads.append(os.getloadavg()[0])
            finally:
                for agent in (*list(agents.values())[1:], first):  # their twins, then the system
                    agent.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    order = [*SETUPS, TWIN]
    kept_setups = sorted({r["setup"] for r in kept}, key=order.index)
    runs = kept + runs
    setups = sorted({*setups, *kept_setups}, key=order.index)
    rows = figures(runs, setups, args.rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "noise_runs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(runs[0]))
        writer.writeheader()
        writer.writerows(runs)
    with open(args.out / "noise.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(
                [row["workload"], row["scale"], row["setup"], row["rounds"], args.run_s,
                 f"{row['cv']:.4f}", f"{row['aa_ci_halfwidth']:.4f}"]
            )  # fmt: skip
    finished = datetime.datetime.now(datetime.UTC)
    lines = [
        "# Measurement noise, measure by measure",
        "",
        f"Measured {started:%Y-%m-%d %H:%M}–{finished:%H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} cores; 1-minute load {min(loads):.2f}–{max(loads):.2f}), "
        "a PostgreSQL 15 sandbox at its defaults, pgbench with 8 clients and 2 threads, "
        "3 s warm-up; nothing else ran on the machine.",
        "",
        f"    python experiments/bench_noise.py --scales {args.scales} --rounds {args.rounds} "
        f"--run-s {args.run_s:g} --blocks {args.blocks} --setups {args.setups}"
        + (" --keep" if args.keep else ""),
        "",
        *(
            [
                f"That run measured {args.setups} only; the runs of "
                f"{', '.join(kept_setups)} are kept from an earlier run of the same script. "
                + kept_note.replace("Measured", "It was measured", 1),
                "",
            ]
            if kept
            else []
        ),
        f"Each block: {args.rounds} rounds of the same config as arms A and B (A B, B A, …), "
        f"{args.run_s:g} s each; figures are medians over {args.blocks} blocks, the "
        "half-widths of each block in brackets. Target: A/A half-width ≤ 0.03 with 5 rounds "
        "of 15 s.",
        "",
        "| workload | scale | setup | cv | A/A 95% CI half-width | per block | run wall s "
        "| reset s | settle s |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        widths = ", ".join(f"{w:.3f}" for w in row["widths"])
        lines.append(
            f"| {row['workload']} | {row['scale']} | {row['setup']} | {row['cv']:.3f} | "
            f"{row['aa_ci_halfwidth']:.3f} | {widths} | {row['wall_s']:.1f} | "
            f"{row['reset_s']:.1f} | {row['settle_s']:.1f} |"
        )
    (args.out / "noise.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Do drift controls give a better verified best for the same time?

For each seed, two sessions of ``autotune tune`` with the same wall-clock
budget (its own verification included), on the same workload and seed: one
plain, one with ``--controls N`` (the default again every N search trials,
each trial told to the optimiser relative to the latest control). The order
alternates from seed to seed. Then one independent verification on a fresh
sandbox measures the default and both sessions' bests in the same paired
rounds, so the two bests are compared head to head.

    python experiments/bench_drift.py --workload pgbench-tpcb --seeds 1,2,3,4 \\
        --minutes 10 --duration 10 --controls 4 --rounds 7

The rule, written before the run: controls ship on by default only if the
geometric mean over seeds of (best with controls / best without), paired by
round, has a 95% CI (t over seeds) above 1. Otherwise they stay an option,
off by default.

Resumable per seed. Writes results/drift.csv and results/drift.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from scipy import stats

from autotune.agent import Agent, materialize_workload
from autotune.replay import run_interleaved
from autotune.spec import Machine, parse_spec
from autotune.store import Store
from autotune.systems.postgres import PostgresSystem, Sandbox
from autotune.tuner import Arm, VerifyPolicy, experiment_info, paired_between, summarize
from autotune.workloads import make_workload

ROOT = Path(__file__).resolve().parent
COLUMNS = [
    "seed", "variant", "session", "trials", "controls_run", "best_trial", "ratio_vs_default",
    "lo", "hi", "with_over_without", "wo_lo", "wo_hi", "rounds",
]  # fmt: skip


def tune(workdir: Path, store_url: str, name: str, seed: int, controls: int, args: Any) -> None:
    env = {**os.environ, "AUTOTUNE_WORKDIR": str(workdir), "AUTOTUNE_STORE": store_url}
    command = [
        sys.executable, "-m", "autotune", "tune", "--system", "postgres",
        "--workload", args.workload, "--trials", "200", "--duration", str(args.duration),
        "--time-budget", str(args.minutes * 60), "--seed", str(seed), "--experiment", name,
    ]  # fmt: skip
    if controls:
        command += ["--controls", str(controls)]
    # Ctrl-C reaches the session too (one process group): it restores and removes its
    # sandbox, so wait for it rather than kill it (subprocess.run would) and leave a
    # server running in a directory about to be removed.
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    result = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    logs = ROOT / "results" / "drift_logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{name}.txt").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def compare(store: Store, names: dict[str, str], args: Any) -> dict[str, Any]:
    """The default and both bests in the same paired rounds on a fresh sandbox."""
    experiment = store.require_experiment(names["plain"])
    machine = experiment.settings.get("machine")
    spec = parse_spec(experiment.spec_content, experiment.spec_path, Machine(**machine))
    arms = [Arm("default", {})]
    for variant, name in names.items():
        best = summarize(store, store.require_experiment(name)).best
        assert best is not None, name
        arms.append(Arm(variant, dict(best.config), f"{name} trial {best.number}"))
    policy = VerifyPolicy(min_rounds=args.rounds, max_rounds=args.rounds, pgtune=False)
    with tempfile.TemporaryDirectory(prefix="autotune-drift-") as tmp:
        definition = materialize_workload(experiment_info(experiment), Path(tmp))
        agent = Agent(
            PostgresSystem(spec, sandbox=Sandbox()), make_workload(definition), args.duration
        )
        agent.start()
        try:
            runs, verification = run_interleaved(
                agent, spec, arms, policy, experiment.objective_metric, experiment.direction,
                args.duration,
            )  # fmt: skip
        finally:
            agent.stop()
    head = paired_between(runs, "controls", "plain", verification.rounds, experiment.direction)
    return {"verification": verification, "head": head, "arms": arms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="pgbench-tpcb")
    parser.add_argument("--seeds", default="1,2,3,4")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--controls", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    csv_path = args.out / "drift.csv"
    rows: list[dict[str, Any]] = []
    if csv_path.exists():
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
    done = {int(r["seed"]) for r in rows}
    started = datetime.datetime.now(datetime.UTC)
    loads = [os.getloadavg()[0]]
    for seed in (int(s) for s in args.seeds.split(",")):
        if seed in done:
            continue
        workdir = Path(tempfile.mkdtemp(prefix="autotune-drift-", dir="/tmp"))
        workdir.chmod(0o755)
        store_url = f"sqlite:///{workdir / 'store.db'}"
        try:
            names = {v: f"drift-{v}-s{seed}" for v in ("plain", "controls")}
            order = list(names) if seed % 2 else list(names)[::-1]
            for variant in order:
                controls = args.controls if variant == "controls" else 0
                tune(workdir, store_url, names[variant], seed, controls, args)
            store = Store(store_url)
            try:
                result = compare(store, names, args)
                counts = {}
                for variant, name in names.items():
                    trials = store.trials(store.require_experiment(name))
                    counts[variant] = (
                        sum(t.searched for t in trials),
                        sum(t.phase == "control" for t in trials),
                    )
            finally:
                store.close()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        v, head = result["verification"], result["head"]
        for arm in result["arms"][1:]:
            a = v.arm(arm.label)
            pr = a.versus if a else None
            rows.append(
                {
                    "seed": seed,
                    "variant": arm.label,
                    "session": names[arm.label],
                    "trials": counts[arm.label][0],
                    "controls_run": counts[arm.label][1],
                    "best_trial": arm.note.rsplit(" ", 1)[1],
                    "ratio_vs_default": None if pr is None else pr.ratio,
                    "lo": None if pr is None else pr.low,
                    "hi": None if pr is None else pr.high,
                    "with_over_without": None if head is None else head.ratio,
                    "wo_lo": None if head is None else head.low,
                    "wo_hi": None if head is None else head.high,
                    "rounds": v.rounds,
                }
            )
        loads.append(os.getloadavg()[0])
        args.out.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        print(json.dumps(rows[-2:]), flush=True)
    write_md(rows, args, started, loads)


def write_md(rows: list[dict[str, Any]], args: Any, started: Any, loads: list[float]) -> None:
    per_seed = {}
    for r in rows:
        if r["with_over_without"] not in (None, ""):
            per_seed[int(r["seed"])] = float(r["with_over_without"])
    logs = [math.log(x) for x in per_seed.values()]
    verdict = "too few seeds for a CI"
    summary = ""
    if len(logs) >= 2:
        mean = statistics.fmean(logs)
        half = (
            float(stats.t.ppf(0.975, len(logs) - 1)) * statistics.stdev(logs) / math.sqrt(len(logs))
        )
        low, high = math.exp(mean - half), math.exp(mean + half)
        summary = f"geometric mean {math.exp(mean):.3f} (95% CI over seeds {low:.3f}–{high:.3f})"
        verdict = "ship on by default" if low > 1 else "keep as an option, off by default"
    lines = [
        "# Drift controls: a better verified best for the same time?",
        "",
        f"Measured {started:%Y-%m-%d %H:%M}–{datetime.datetime.now(datetime.UTC):%H:%M} UTC on "
        f"{platform.node()} ({os.cpu_count()} cores; 1-minute load {min(loads):.2f}–"
        f"{max(loads):.2f} between seeds); nothing else ran on the machine.",
        "",
        f"    python experiments/bench_drift.py --workload {args.workload} --seeds {args.seeds} "
        f"--minutes {args.minutes:g} --duration {args.duration:g} --controls {args.controls} "
        f"--rounds {args.rounds}",
        "",
        f"Per seed: two `autotune tune` sessions of {args.minutes:g} minutes each "
        "(`--time-budget`, their own verification included), plain and with "
        f"`--controls {args.controls}`; then the default and both bests in {args.rounds} paired "
        "rounds on a fresh sandbox. Rule, fixed before the run: ship controls on by default "
        "only if the CI over seeds of controls/plain lies above 1.",
        "",
        "| seed | variant | search trials | controls | best | × default (95% CI) | "
        "controls / plain (95% CI) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f = {k: "—" if r[k] in (None, "") else f"{float(r[k]):.3f}" for k in COLUMNS[6:12]}
        lines.append(
            f"| {r['seed']} | {r['variant']} | {r['trials']} | {r['controls_run']} | "
            f"{r['best_trial']} | {f['ratio_vs_default']} ({f['lo']}–{f['hi']}) | "
            f"{f['with_over_without']} ({f['wo_lo']}–{f['wo_hi']}) |"
        )
    lines += ["", f"Over {len(logs)} seeds, controls / plain: {summary or '—'}: **{verdict}**.", ""]
    (args.out / "drift.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""How noisy is a short pgbench run? The spread of repeated runs of one config by run length.

Hyperband screens configs with short runs; a run too short to tell configs
apart ranks them by luck. This measures the default config at several
lengths on one managed sandbox, in rotating order (so drift hits every
length alike), after one settling run, and reports each length's median
tps and its coefficient of variation (robust: 1.4826 x MAD / median).

    python experiments/bench_short_runs.py --lengths 2.2,6.7,20 --rounds 8

Writes experiments/results/short_runs.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np

from autotune._resources import resolve
from autotune.agent import Agent
from autotune.spec import Machine, load_spec
from autotune.systems.postgres import PostgresSystem, Sandbox
from autotune.workloads import load_workload, make_workload

ROOT = Path(__file__).resolve().parent


def robust_cv(values: np.ndarray) -> float:
    median = float(np.median(values))
    return float(1.4826 * np.median(np.abs(values - median)) / median)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="2.2,6.7,20", help="seconds, comma-separated")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "short_runs.md")
    args = parser.parse_args()
    lengths = [float(x) for x in args.lengths.split(",")]
    spec = load_spec(resolve("knobs", "postgres"), Machine.local())
    workload = make_workload(load_workload(resolve("workloads", "pgbench-tpcb")))
    # The knobs the multi-fidelity benchmark tunes, at their defaults.
    config = {name: spec.knobs[name].default for name in spec.groups["oltp"]}
    agent = Agent(PostgresSystem(spec, sandbox=Sandbox()), workload, max(lengths))
    runs: dict[float, list[float]] = {s: [] for s in lengths}
    started = time.time()
    agent.start()
    try:
        agent.run_trial(config)  # settle: autovacuum and the first checkpoint after the load
        for r in range(args.rounds):
            order = lengths[r % len(lengths) :] + lengths[: r % len(lengths)]
            for seconds in order:
                outcome = agent.run_trial(config, duration_s=seconds)
                tps = float(outcome.metrics.get("tps", "nan")) if outcome.status == "ok" else np.nan
                runs[seconds].append(tps)
                print(f"round {r + 1} {seconds:g} s: {tps:.1f} tps", flush=True)
    finally:
        agent.stop()
    lines = [
        "# Noise of short pgbench runs",
        "",
        f"Run {datetime.datetime.now().isoformat(timespec='minutes')} on {platform.node()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, PostgreSQL 15 "
        "managed sandbox, pgbench-tpcb (scale 10), the `oltp` group's knobs at their "
        "defaults. Command: `python "
        f"experiments/bench_short_runs.py --lengths {args.lengths} --rounds {args.rounds}` "
        f"({(time.time() - started) / 60:.0f} min). One settling run, then {args.rounds} rounds "
        "of every length in rotating order.",
        "",
        "| run length s | runs (tps) | median | robust CV | min / median |",
        "|---|---|---|---|---|",
    ]
    for seconds, values in runs.items():
        v = np.array(values, dtype=float)
        ok = v[np.isfinite(v)]
        cells = ", ".join(f"{x:.0f}" for x in v)
        lines.append(
            f"| {seconds:g} | {cells} | {np.median(ok):.1f} | {robust_cv(ok):.3f} | "
            f"{ok.min() / np.median(ok):.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

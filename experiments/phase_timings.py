"""Where a tuning session's time goes: phase timings per trial, and the share spent measuring.

Runs a real session on a managed sandbox (or reads an existing experiment with
--experiment NAME --store URL --no-run) and writes a Markdown table to
experiments/results/phase_timings.md.

    python experiments/phase_timings.py --duration 30 --trials 6
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autotune.store import Store

RESULTS = Path(__file__).resolve().parent / "results"
PHASES = ("apply_s", "restart_s", "reload_s", "warmup_s", "measure_s", "collect_s", "total_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", default="pgbench-tpcb")
    parser.add_argument("--knobs", default="group:oltp")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--store", default=None)
    parser.add_argument("--no-run", action="store_true", help="only report an existing experiment")
    parser.add_argument("--out", type=Path, default=RESULTS / "phase_timings.md")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="at-phases-"))
    store_url = args.store or f"sqlite:///{workdir / 'store.db'}"
    name = args.experiment or f"phases-{int(time.time())}"
    wall = None
    if not args.no_run:
        t0 = time.monotonic()
        cmd = [
            sys.executable, "-m", "autotune", "tune", "--system", "postgres",
            "--workload", args.workload, "--knobs", args.knobs, "--trials", str(args.trials),
            "--duration", str(args.duration), "--experiment", name, "--store", store_url,
        ]  # fmt: skip
        subprocess.run(cmd, check=True, env={**os.environ, "AUTOTUNE_WORKDIR": str(workdir)})
        wall = time.monotonic() - t0
    store = Store(store_url)
    experiment = store.require_experiment(name)
    trials = store.trials(experiment)
    lines = [
        f"# Phase timings: {experiment.workload_name}, --duration {args.duration:g}",
        "",
        f"Host: {platform.node()}, {os.cpu_count()} CPUs. Knobs: {args.knobs}. "
        f"Optimizer: {experiment.optimizer}. Recorded {trials[0].started_at:%Y-%m-%d %H:%M} UTC."
        if trials
        else "",
        "",
        "| trial | status | " + " | ".join(PHASES) + " |",
        "|---|---|" + "---|" * len(PHASES),
    ]
    for t in trials:
        cells = [f"{t.timings[p]:.2f}" if p in t.timings else "" for p in PHASES]
        lines.append(f"| {t.number} | {t.status} | " + " | ".join(cells) + " |")
    measured = sum(t.timings.get("measure_s", 0.0) for t in trials)
    total = sum(t.timings.get("total_s", 0.0) for t in trials)
    share = f"{measured / total:.1%} of trial wall time ({measured:.0f}s of {total:.0f}s)"
    lines += ["", f"Measuring: {share}."]
    if wall:
        lines.append(
            f"Whole command, including data load, optimiser and restore: {wall:.0f}s; "
            f"measuring {measured / wall:.1%} of it."
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Do the claims autotune prints hold up when measured again?

Each session is ``autotune tune`` as a user runs it (the default optimiser,
every safe knob, the verification it ends with), then an independent
``autotune verify`` of its best on a fresh sandbox, with at least seven
rounds. The claim is the session's: the ratio of its best to the default and
the 95% CI from its own paired rounds. The check is the independent one.

    python experiments/bench_calibration.py \\
        --workloads pgbench-tpcb,pgbench-select,pgbench-simple-update \\
        --seeds 1,2,3,4 --trials 20 --duration 10 --verify-rounds 7

Targets (issue 17): the verified ratio lies inside the session's CI in >= 90%
of sessions; no session recommends a config that verifies significantly worse
than the default; no "significant" claim fails verification (its independent
CI must lie above 1 too).

Resumable: a session already in ``results/calibration.csv`` is skipped, so an
interrupted run goes on where it stopped. Writes results/calibration.csv
(session,workload,seed,trials,claimed_ratio,claimed_lo,claimed_hi,verified_ratio,
verified_lo,verified_hi,verified_rounds) and results/calibration.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from autotune.store import Store

ROOT = Path(__file__).resolve().parent
COLUMNS = [
    "session", "workload", "seed", "trials", "claimed_ratio", "claimed_lo", "claimed_hi",
    "verified_ratio", "verified_lo", "verified_hi", "verified_rounds",
]  # fmt: skip
EXTRA = ["recommended", "claim_rounds", "verify_verdict", "tune_s", "verify_s", "started"]


def autotune(workdir: Path, store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTOTUNE_WORKDIR": str(workdir), "AUTOTUNE_STORE": store_url}
    env["COLUMNS"] = "160"
    result = subprocess.run(
        [sys.executable, "-m", "autotune", *args], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(f"autotune {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def session(
    workdir: Path, store_url: str, workload: str, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    name = f"cal-{workload}-s{seed}"
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    out = autotune(
        workdir, store_url, "tune", "--system", "postgres", "--workload", workload,
        "--trials", str(args.trials), "--duration", str(args.duration), "--seed", str(seed),
        "--experiment", name,
    ).stdout  # fmt: skip
    (ROOT / "results" / "calibration_logs").mkdir(parents=True, exist_ok=True)
    (ROOT / "results" / "calibration_logs" / f"{name}.txt").write_text(out)
    tune_s = time.monotonic() - t0
    best = json.loads(autotune(workdir, store_url, "best", name, "--format", "json").stdout)
    t0 = time.monotonic()
    verify_out = autotune(
        workdir, store_url, "verify", name, "--min-rounds", str(args.verify_rounds),
        "--max-rounds", str(max(args.verify_rounds, 10)), "--duration", str(args.duration),
    ).stdout  # fmt: skip
    with open(ROOT / "results" / "calibration_logs" / f"{name}.txt", "a") as f:
        f.write("\n# autotune verify\n" + verify_out)
    verify_s = time.monotonic() - t0
    store = Store(store_url)
    try:
        analysis = store.analyses(store.require_experiment(name), "verify")[-1].result
    finally:
        store.close()
    checked = next(a for a in analysis["verification"]["arms"] if a["label"] == "best")
    low, high = best["ratio_ci"] or (None, None)
    return {
        "session": name,
        "workload": workload,
        "seed": seed,
        "trials": args.trials,
        "claimed_ratio": best["ratio"],
        "claimed_lo": low,
        "claimed_hi": high,
        "verified_ratio": checked["ratio"],
        "verified_lo": checked["ci"][0] if checked["ci"] else None,
        "verified_hi": checked["ci"][1] if checked["ci"] else None,
        "verified_rounds": analysis["verification"]["rounds"],
        "recommended": best["recommended"],
        "claim_rounds": best.get("rounds"),
        "verify_verdict": analysis["verification"]["verdict"],
        "tune_s": round(tune_s),
        "verify_s": round(verify_s),
        "started": started,
    }


def _f(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    return None if value in (None, "") else float(value)


def report(rows: list[dict[str, Any]], args: argparse.Namespace, loads: list[float]) -> str:
    inside = recommended_worse = significant_failed = significant = 0
    lines = [
        "| session | claimed (95% CI), rounds | recommended | verified (95% CI), rounds | inside |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ratio, lo, hi = (_f(row, k) for k in ("claimed_ratio", "claimed_lo", "claimed_hi"))
        vr, vlo, vhi = (_f(row, k) for k in ("verified_ratio", "verified_lo", "verified_hi"))
        ok = None not in (lo, hi, vr) and lo <= vr <= hi  # type: ignore[operator]
        inside += bool(ok)
        recommended = str(row["recommended"]) == "True"
        if recommended and vhi is not None and vhi < 1:
            recommended_worse += 1
        if lo is not None and lo > 1:
            significant += 1
            if vlo is None or vlo <= 1:
                significant_failed += 1
        lines.append(
            f"| {row['session']} | {ratio:.3f} ({lo:.3f}–{hi:.3f}), {row['claim_rounds']} | "
            f"{'yes' if recommended else 'no: keep the default'} | "
            f"{vr:.3f} ({vlo:.3f}–{vhi:.3f}), {row['verified_rounds']} | {'yes' if ok else 'NO'} |"
        )
    n = len(rows)
    head = [
        "# Calibration: do the session's claims hold up?",
        "",
        f"Measured {rows[0]['started'] if rows else '-'} to "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} cores; 1-minute load {min(loads):.2f}–{max(loads):.2f} between "
        "sessions); nothing else ran on the machine.",
        "",
        "Each session: `autotune tune --system postgres --workload W --trials "
        f"{args.trials} --duration {args.duration:g} --seed S` (default optimiser, every safe "
        "knob, its own paired verification), then `autotune verify NAME --min-rounds "
        f"{args.verify_rounds} --max-rounds {max(args.verify_rounds, 10)} --duration "
        f"{args.duration:g}` on a fresh sandbox: the default, the session's best and pgtune "
        "in paired rounds. Logs: results/calibration_logs/.",
        "",
        f"- verified ratio inside the session's 95% CI: **{inside} of {n}** "
        f"({inside / max(n, 1):.0%}; target ≥ 90%)",
        f"- recommended configs that verify significantly worse than the default: "
        f"**{recommended_worse}** (target 0)",
        f"- significant claims ({significant}) whose independent CI does not lie above 1: "
        f"**{significant_failed}** (target 0)",
        "",
    ]
    return "\n".join([*head, *lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="pgbench-tpcb,pgbench-select,pgbench-simple-update")
    parser.add_argument("--seeds", default="1,2,3,4")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--verify-rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    csv_path = args.out / "calibration.csv"
    rows: list[dict[str, Any]] = []
    if csv_path.exists():
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
    done = {r["session"] for r in rows}
    loads = [os.getloadavg()[0]]
    workdir = Path(tempfile.mkdtemp(prefix="autotune-cal-", dir="/tmp"))
    workdir.chmod(0o755)
    store_url = f"sqlite:///{workdir / 'calibration.db'}"  # each row is in the CSV once done
    try:
        # Workloads take turns, so the host's drift over the hours falls on all of them.
        for seed in (int(s) for s in args.seeds.split(",")):
            for workload in args.workloads.split(","):
                if f"cal-{workload}-s{seed}" in done:
                    continue
                row = session(workdir, store_url, workload, seed, args)
                rows.append(row)
                loads.append(os.getloadavg()[0])
                with open(csv_path, "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=COLUMNS + EXTRA)
                    writer.writeheader()
                    writer.writerows(rows)
                print(json.dumps(row), flush=True)
                (args.out / "calibration.md").write_text(report(rows, args, loads))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(rows, args, loads))


if __name__ == "__main__":
    main()

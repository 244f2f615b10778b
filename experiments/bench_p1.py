"""P1: how much faster than the defaults, than pgtune, and than the best known?

For each workload, four arms, all measured in the same interleaved rounds
(rotating order) on one fresh sandbox, each run from the loaded data, settled
and warm:

- ``default``: PostgreSQL's defaults;
- ``pgtune``: today's pgtune for this host (oltp for pgbench, dw for a query set);
- ``autotune``: the best config of one ``autotune tune --trials 30`` session with
  default settings, as a user runs it (its own verification included);
- ``best_known``: the best of a long search, ``--best-trials`` trials (at least 150)
  split over several optimisers and seeds (``--no-verify``); each search's best
  is verified in a first set of rounds, and the winner is measured again here.

    python experiments/bench_p1.py \\
        --workloads pgbench-tpcb-large,pgbench-select-large,analytic-large

``--start-with`` is the autotune session's, stated explicitly. Its default here is
the CLI's, pgtune (pgtune's config as the first search trial): that session has its
own name and writes results/p1-start-pgtune.csv and .md. ``--start-with none``
gives the sessions from before that default (results/p1.csv and .md).
``--knobs group`` likewise tunes only the workload's knob group (``group:oltp`` for
pgbench, ``group:analytics`` for a query set) and writes results/p1-knobs-group.*;
the two combine (p1-start-pgtune-knobs-group.*).

Resumable: sessions resume by name in the P1 store (``.autotune/p1/``), and a
workload already in the variant's CSV is skipped. Writes that CSV
(``workload,arm,rounds,run_s,median,ratio,ci_lo,ci_hi``; ratio to the default,
> 1 better, paired 95% CI) and its .md, with the targets checked from the
figures: autotune's CI lower bound > 1; autotune ≥ pgtune (paired); and
(ratio_autotune − 1) ≥ 0.9 × (ratio_best_known − 1).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from autotune.agent import Agent, materialize_workload
from autotune.replay import run_interleaved
from autotune.spec import Machine, parse_spec
from autotune.store import Store
from autotune.systems.postgres import PostgresSystem, Sandbox
from autotune.tuner import (
    Arm,
    Verification,
    VerifyPolicy,
    VerifyRun,
    experiment_info,
    paired_between,
    pgtune_arm,
    summarize,
    usable,
    verify_batch,
    verify_runs,
)
from autotune.workloads import make_workload

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
COLUMNS = ["workload", "arm", "rounds", "run_s", "median", "ratio", "ci_lo", "ci_hi"]
LONG_SEARCHES = [("auto", 1), ("forest", 2), ("random", 3)]
"""The long search: model-based, tree-based and random, so no single model's blind spot
decides what the best known is."""


def tag(args: Any) -> str:
    """The suffix of a variant's session, notes and result files: empty for the default."""
    start = "" if args.start_with == "none" else f"-start-{args.start_with}"
    return start + ("" if args.knobs == "all" else f"-knobs-{args.knobs}")


def group_of(workload: str) -> str:
    """The spec's knob group for a workload: pgbench is OLTP, the query sets analytic."""
    return "group:oltp" if workload.startswith("pgbench") else "group:analytics"


def variant_argv(workload: str, args: Any) -> list[str]:
    """The autotune session's options that make this variant, stated even where they
    are the CLI's default, so a changed default does not change a variant's runs."""
    argv = ["--start-with", args.start_with]
    return argv if args.knobs == "all" else [*argv, "--knobs", group_of(workload)]


def session_name(workload: str, args: Any) -> str:
    """The autotune arm's session in the P1 store."""
    return f"p1-{workload}-autotune{tag(args)}"


def notes_path(workload: str, args: Any) -> Path:
    return ROOT / "results" / "p1_logs" / f"{workload}{tag(args)}-notes.json"


def tune(workdir: Path, store_url: str, name: str, argv: list[str]) -> None:
    """One ``autotune tune`` session as a user runs it; resumed if it ran before."""
    env = {**os.environ, "AUTOTUNE_WORKDIR": str(workdir), "AUTOTUNE_STORE": store_url}
    command = [sys.executable, "-m", "autotune", "tune", "--system", "postgres",
               "--experiment", name, *argv]  # fmt: skip
    logs = ROOT / "results" / "p1_logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.txt").open("a") as log:
        # Ctrl-C reaches the session too (one process group); wait for it to restore
        # and remove its sandbox rather than kill it.
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        try:
            code = proc.wait()
        except BaseException:
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    if code != 0:
        raise SystemExit(f"{name} failed (exit {code}); see {logs / (name + '.txt')}")


def finished(store: Store, name: str) -> bool:
    experiment = store.experiment(name)
    return experiment is not None and experiment.status == "done"


def measure(
    store: Store, template: str, arms: list[Arm], rounds: int
) -> tuple[list[VerifyRun], Verification, float]:
    """The arms in ``rounds`` interleaved rounds on a fresh sandbox; and wall seconds per
    run (reset, settle, warm-up and measurement; the sandbox's start and load left out)."""
    experiment = store.require_experiment(template)
    machine = Machine(**experiment.settings["machine"])
    spec = parse_spec(experiment.spec_content, experiment.spec_path, machine)
    duration = experiment.settings.get("duration_s")
    policy = VerifyPolicy(min_rounds=rounds, max_rounds=rounds, pgtune=False)
    with tempfile.TemporaryDirectory(prefix="autotune-p1-") as tmp:
        definition = materialize_workload(experiment_info(experiment), Path(tmp))
        workload = make_workload(definition)
        agent = Agent(PostgresSystem(spec, sandbox=Sandbox()), workload, duration)
        agent.start()
        try:
            t0 = time.monotonic()
            runs, verification = run_interleaved(
                agent, spec, arms, policy, experiment.objective_metric, experiment.direction,
                duration,
            )  # fmt: skip
            run_s = (time.monotonic() - t0) / max(1, len(runs))
        finally:
            agent.stop()
    return runs, verification, run_s


def best_arm(store: Store, name: str, label: str) -> Arm:
    experiment = store.require_experiment(name)
    summary = summarize(store, experiment)
    assert summary.best is not None, f"{name}: no successful trial"
    return Arm(label, dict(summary.best.config), f"{name} trial {summary.best.number}")


def run_workload(workload: str, args: Any, workdir: Path, store_url: str) -> list[dict[str, Any]]:
    store = Store(store_url)
    try:
        user = session_name(workload, args)
        if not finished(store, user):
            tune(workdir, store_url, user, ["--workload", workload, "--trials",
                 str(args.trials), *variant_argv(workload, args)])  # fmt: skip
        if args.no_best_known:
            return session_rows(store, workload, user, args)
        per = -(-args.best_trials // len(LONG_SEARCHES))
        long_names = []
        for optimizer, seed in LONG_SEARCHES:
            name = f"p1-{workload}-long-{optimizer}-s{seed}"
            long_names.append(name)
            if not finished(store, name):
                tune(workdir, store_url, name, [
                    "--workload", workload, "--trials", str(per), "--optimizer", optimizer,
                    "--seed", str(seed), "--no-verify",
                ])  # fmt: skip
        # The long searches' bests head to head; the winner is best_known, measured afresh.
        candidates = [best_arm(store, n, f"long-{i}") for i, n in enumerate(long_names)]
        _, screen, _ = measure(store, user, [Arm("default", {}), *candidates], args.screen_rounds)
        winner = screen.best
        assert winner is not None
        known = next(a for a in candidates if a.label == winner.label)
        experiment = store.require_experiment(user)
        spec = parse_spec(
            experiment.spec_content,
            experiment.spec_path,
            Machine(**experiment.settings["machine"]),
        )
        tuned = pgtune_arm(
            spec, experiment.settings["machine"], experiment.workload_content, restartable=True
        )
        arms = [
            Arm("default", {}),
            Arm("pgtune", tuned or {}),
            best_arm(store, user, "autotune"),
            Arm("best_known", known.config, known.note),
        ]
        runs, verification, run_s = measure(store, user, arms, args.rounds)
        head = paired_between(runs, "autotune", "pgtune", verification.rounds, experiment.direction)
        autotune_summary = summarize(store, experiment)
        notes = {
            "autotune": {
                "session_verdict": autotune_summary.verification.verdict
                if autotune_summary.verification
                else None,
                "source": arms[2].note,
            },
            "best_known": {"source": known.note, "screen": [a.to_json() for a in screen.arms]},
            "autotune_vs_pgtune": None
            if head is None
            else {"ratio": head.ratio, "low": head.low, "high": head.high},
        }
        notes_path(workload, args).write_text(json.dumps(notes, indent=1, default=str))
    finally:
        store.close()
    rows = []
    for arm in arms:
        result = verification.arm(arm.label)
        assert result is not None
        pr = result.versus
        rows.append({
            "workload": workload, "arm": arm.label, "rounds": verification.rounds,
            "run_s": round(run_s, 1), "median": result.median,
            "ratio": 1.0 if pr is None else round(pr.ratio, 6),
            "ci_lo": "" if pr is None else round(pr.low, 6),
            "ci_hi": "" if pr is None else round(pr.high, 6),
        })  # fmt: skip
    return rows


def below_half(store: Store, workload: str, args: Any) -> list[str]:
    """Per session of the workload in this variant (its autotune session and the long
    searches): its search trials, and those below half the baseline (tps under 0.5×, or
    latency over 2×), the issue's measure of exploration that hurts."""
    lines = []
    for experiment in store.experiments():
        name = experiment.name
        if name != session_name(workload, args) and not name.startswith(f"p1-{workload}-long-"):
            continue
        trials = usable(store.trials(experiment, finished_only=True))
        values = [float(t.objective or 0.0) for t in trials if not t.is_baseline]
        if not values:
            continue  # a session interrupted before its first search trial
        base = statistics.median(float(t.objective or 0.0) for t in trials if t.is_baseline)
        if experiment.direction == "maximize":
            bad = sum(v < 0.5 * base for v in values)
        else:
            bad = sum(v > 2.0 * base for v in values)
        lines.append(f"| {experiment.name} | {experiment.optimizer} | {len(values)} | {bad} |")
    return lines


def session_rows(store: Store, workload: str, name: str, args: Any) -> list[dict[str, Any]]:
    """The rows of the default, pgtune and autotune as the session's own verification
    measured them (its paired rounds, beside a twin): no best-known arm, and the
    autotune arm is the best of the session's contenders on those same rounds."""
    experiment = store.require_experiment(name)
    verification = summarize(store, experiment).verification
    assert verification is not None and verification.best is not None, f"{name}: no verification"
    batch = verify_batch(store.trials(experiment, finished_only=True))
    run_s = statistics.fmean(float(t.timings.get("total_s") or 0.0) for t in batch)
    runs = verify_runs(batch)
    # Beside a twin the default has no runs of its own: it is measured within every run.
    beside = [r.reference for r in runs if r.reference is not None]
    default = verification.arm("default")
    default_median = default.median if default is not None else None
    if default_median is None and beside:
        default_median = statistics.median(beside)
    rows = [{
        "workload": workload, "arm": "default", "rounds": verification.rounds,
        "run_s": round(run_s, 1), "median": default_median, "ratio": 1.0, "ci_lo": "",
        "ci_hi": "",
    }]  # fmt: skip
    for label, arm in (("pgtune", verification.arm("pgtune")), ("autotune", verification.best)):
        if arm is None:
            continue
        pr = arm.versus
        rows.append({
            "workload": workload, "arm": label, "rounds": verification.rounds,
            "run_s": round(run_s, 1), "median": arm.median,
            "ratio": 1.0 if pr is None else round(pr.ratio, 6),
            "ci_lo": "" if pr is None else round(pr.low, 6),
            "ci_hi": "" if pr is None else round(pr.high, 6),
        })  # fmt: skip
    pair = paired_between(
        runs, verification.best.label, "pgtune", verification.rounds, experiment.direction
    )
    head = None if pair is None else {"ratio": pair.ratio, "low": pair.low, "high": pair.high}
    every = store.trials(experiment)
    span = [t.started_at for t in every if t.started_at is not None]
    span += [t.finished_at for t in every if t.finished_at is not None]
    notes = {
        "measured": f"{min(span):%Y-%m-%d %H:%M}–{max(span):%H:%M} UTC" if span else None,
        "autotune": {"source": f"{name} {verification.best.label}"},
        "autotune_vs_pgtune": head,
        "below_half": below_half(store, workload, args),
    }
    notes_at = notes_path(workload, args)
    notes_at.parent.mkdir(parents=True, exist_ok=True)
    notes_at.write_text(json.dumps(notes, indent=1))
    return rows


def write_md(rows: list[dict[str, Any]], args: Any, store: Store) -> None:
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    notes = {w: json.loads(notes_path(w, args).read_text()) for w in workloads}
    measured = ",".join(workloads)  # what the rows hold
    lines = [
        "# P1: autotune against the default, pgtune and the best known",
        "",
        f"Report written {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on "
        f"{platform.node()} ({os.cpu_count()} cores); when each workload was measured is "
        "given below the tables, the runs' logs are in results/p1_logs/.",
        "",
        f"    python experiments/bench_p1.py --workloads {measured} --trials {args.trials} "
        + (
            "--no-best-known"
            if args.no_best_known
            else f"--best-trials {args.best_trials} --rounds {args.rounds}"
        )
        + f" --start-with {args.start_with}"
        + ("" if args.knobs == "all" else f" --knobs {args.knobs}"),
        "",
        "| workload | arm | rounds | wall s per run | median | × default | 95% CI |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = f"{float(r['ci_lo']):.3f}–{float(r['ci_hi']):.3f}" if r["ci_lo"] != "" else "—"
        lines.append(
            f"| {r['workload']} | {r['arm']} | {r['rounds']} | {r['run_s']} | "
            f"{float(r['median']):.2f} | {float(r['ratio']):.3f} | {ci} |"
        )
    lines += ["", "Targets, from the figures above:", ""]
    for workload in workloads:
        arm = {r["arm"]: r for r in rows if r["workload"] == workload}
        a, b = arm["autotune"], arm.get("best_known")
        lo = float(a["ci_lo"])
        gain = float(a["ratio"]) - 1
        known = None if b is None else float(b["ratio"]) - 1
        head = notes[workload].get("autotune_vs_pgtune")
        if head is None:
            versus = "autotune / pgtune: no paired rounds"
        else:
            verdict = "met" if head["ratio"] >= 1 else "missed"
            versus = (
                f"autotune / pgtune {head['ratio']:.3f} "
                f"({head['low']:.3f}–{head['high']:.3f}, paired; {verdict})"
            )
        if known is None:
            near = "no best-known arm was measured: the 90% target is not checked"
        else:
            verdict = "met" if gain >= 0.9 * known else "missed"
            near = f"gain {gain:+.3f} against 0.9 × the best known's {0.9 * known:+.3f} ({verdict})"
        lines.append(
            f"- {workload}: autotune's CI lower bound {lo:.3f} "
            f"(> 1: {'met' if lo > 1 else 'missed'}); {versus}; {near}."
        )
    lines += [
        "",
        "Search trials below half the baseline (tps under 0.5×, latency over 2×; target at "
        "most 1 in 30), counted per session:",
        "",
        "| session | optimiser | search trials | below half |",
        "|---|---|---|---|",
    ]
    for workload in workloads:
        # The store holds the sessions; the notes keep their counts for a report written
        # from another store (a fresh checkout's). A session in both counts once, from
        # the store.
        counted = below_half(store, workload, args)
        kept = notes[workload].get("below_half", [])
        named = {line.split("|")[1] for line in counted}
        lines += counted + [line for line in kept if line.split("|")[1] not in named]
    for workload in workloads:
        if notes[workload].get("measured"):
            lines.append(f"\n{workload}: measured {notes[workload]['measured']}.")
    (ROOT / "results" / f"p1{tag(args)}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workloads", default="pgbench-tpcb-large,pgbench-select-large,analytic-large"
    )
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--best-trials", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--screen-rounds", type=int, default=5)
    parser.add_argument(
        "--report-only", action="store_true", help="Write p1.md from p1.csv and the store."
    )
    parser.add_argument(
        "--no-best-known",
        action="store_true",
        help="Only the autotune session: its own verification gives default, pgtune, autotune.",
    )
    parser.add_argument(
        "--start-with",
        choices=["none", "pgtune"],
        default="pgtune",
        help="The autotune session's --start-with (default pgtune, the CLI's); pgtune "
        "writes results/p1-start-pgtune.*, none results/p1.*.",
    )
    parser.add_argument(
        "--knobs",
        choices=["all", "group"],
        default="all",
        help="What the autotune session tunes: all safe knobs, or the workload's group "
        "(group:oltp for pgbench, group:analytics otherwise); group adds -knobs-group.",
    )
    args = parser.parse_args()
    workdir = REPO / ".autotune" / "p1"
    workdir.mkdir(parents=True, exist_ok=True)
    store_url = f"sqlite:///{workdir / 'store.db'}"
    csv_path = ROOT / "results" / f"p1{tag(args)}.csv"
    rows: list[dict[str, Any]] = []
    if csv_path.exists():
        with csv_path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    for workload in [] if args.report_only else args.workloads.split(","):
        if any(r["workload"] == workload for r in rows):
            continue
        rows += run_workload(workload, args, workdir, store_url)
        with csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        print(json.dumps(rows[-4:]), flush=True)
    store = Store(store_url)
    try:
        write_md(rows, args, store)
    finally:
        store.close()


if __name__ == "__main__":
    main()

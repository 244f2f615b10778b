"""Warm start vs cold start: trials to reach 95% of the cold start's final best.

Both recorded experiments are real pgbench sessions on this machine
(``experiments/recorded/``). The *target* is replayed offline: a random
forest fitted on its trials stands in for the server (``autotune replay``'s
surrogate, with the noise seen between its repeats), so 2 × 20 seeded runs
take minutes instead of days. The cold start runs ``auto`` from the baseline;
the warm start first tells it the *source* experiment's trials, carried into
the target's space and scaled by the ratio of the baselines, exactly as
``autotune tune --warm-start SOURCE`` does through the scheduler. Workload
mapping (``--warm-start auto``) is scored too: the distance from the target's
baseline metrics to each candidate's model.

Usage:
    python experiments/bench_warmstart.py --source experiments/recorded/A.json \\
        --target experiments/recorded/B.json [--trials 30] [--seeds 20]
Writes experiments/results/warmstart.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autotune.bench.competitors import Evaluator
from autotune.optimizers import make_optimizer
from autotune.replay import build_surrogate
from autotune.store import Store, import_experiment, read_export
from autotune.tuner import experiment_space, map_workload
from autotune.tuner._warm import baseline_value, warm_observations

ROOT = Path(__file__).resolve().parent


def run(surrogate, space, optimizer: str, seed: int, trials: int, warm) -> list[float]:  # type: ignore[no-untyped-def]
    """Best-so-far true objective (the forest's, noise-free) per trial of one seeded run."""
    problem = surrogate.problem
    ev = Evaluator(problem, seed)
    opt = make_optimizer(optimizer, space, seed)
    for config, loss in warm:
        opt.tell(config, loss)
    baseline = space.default()
    opt.tell(baseline, ev(baseline))
    while len(ev.evaluations) < trials:
        opt.reseed(len(ev.evaluations))
        suggestion = opt.suggest(1)[0]
        opt.tell(suggestion.config, ev(suggestion.config), 1.0)
    curve, best_obs, best_true = [], math.inf, math.nan
    for e in ev.evaluations:
        if e.observed is not None and e.true is not None and e.observed < best_obs:
            best_obs, best_true = e.observed, e.true
        curve.append(-best_true)  # tps: the loss is -tps
    return curve


def first_at(curve: list[float], threshold: float) -> int | None:
    return next((i + 1 for i, v in enumerate(curve) if v >= threshold), None)


def bootstrap_median_ci(values: list[float], seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    a = np.asarray(values, dtype=float)
    meds = np.median(rng.choice(a, size=(2000, len(a))), axis=1)
    low, high = np.percentile(meds, [2.5, 97.5])
    return float(low), float(high)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--target", type=Path, required=True)
    parser.add_argument("--extra", type=Path, action="append", default=[], help="more candidates")
    parser.add_argument("--optimizer", default="auto")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "warmstart.md")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/warm.db")
        source = import_experiment(store, read_export(args.source))
        target = import_experiment(store, read_export(args.target))
        for path in args.extra:
            import_experiment(store, read_export(path))
        space = experiment_space(target)
        surrogate = build_surrogate(store, target)
        target_trials = store.trials(target, finished_only=True)
        my_base = baseline_value(target_trials)
        assert my_base is not None
        warm, scale = warm_observations(store, source, space, target.direction, my_base)
        # Mapping as at the start of a new session: the target's baseline runs only.
        baseline_runs = [t for t in target_trials if t.is_baseline]
        mapping = map_workload(store, target, experiment_space, baseline_runs)
        cold = [
            run(surrogate, space, args.optimizer, s, args.trials, []) for s in range(args.seeds)
        ]
        hot = [
            run(surrogate, space, args.optimizer, s, args.trials, warm) for s in range(args.seeds)
        ]
    cold_final = statistics.median(c[-1] for c in cold)
    base = cold[0][0]  # trial 1 is the baseline, the same config in every run
    thresholds = {
        "95% of cold's final best": 0.95 * cold_final,
        "95% of cold's gain over the baseline": base + 0.95 * (cold_final - base),
        "cold's final best": cold_final,
    }
    lines = [
        "# Warm start vs cold start",
        "",
        f"Command: `python experiments/bench_warmstart.py {' '.join(sys.argv[1:])}` "
        f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
        f"{time.monotonic() - started:.0f}s).",
        "",
        f"- Target: `{target.name}` ({target.workload_name}, "
        f"{len(target_trials)} recorded trials), "
        f"replayed on a random forest (5-fold CV R² "
        f"{'n/a' if surrogate.r2_cv is None else f'{surrogate.r2_cv:.2f}'}, noise sd "
        f"{surrogate.noise_sd:.4g} tps from its repeats).",
        f"- Source: `{source.name}` ({source.workload_name}): {len(warm)} trials told first, "
        f"objective scaled ×{scale:.3f} (ratio of the baselines).",
        f"- Optimiser `{args.optimizer}`, {args.trials} trials per run, seeds 0–{args.seeds - 1}; "
        "values are the forest's noise-free tps of the config with the best observed value.",
        f"- The baseline (trial 1) is predicted at {base:.1f} tps; the cold start's median "
        f"final best is {cold_final:.1f} tps.",
        "",
        "Trials to reach each threshold (median over seeds, bootstrap 95% CI of the median; "
        f"a run that never gets there counts as {args.trials + 1}):",
        "",
        "| threshold | tps | cold | warm | cold runs there | warm runs there |",
        "|---|---|---|---|---|---|",
    ]
    for label, threshold in thresholds.items():
        cells = []
        reached = []
        for curves in (cold, hot):
            at = [first_at(c, threshold) for c in curves]
            n = [float(a if a is not None else args.trials + 1) for a in at]
            low, high = bootstrap_median_ci(n)
            cells.append(f"{statistics.median(n):g} ({low:g}–{high:g})")
            reached.append(f"{sum(a is not None for a in at)}/{len(at)}")
        lines.append(f"| {label} | {threshold:.1f} | {' | '.join(cells)} | {' | '.join(reached)} |")
    finals = [c[-1] for c in hot], [c[-1] for c in cold]
    rng = np.random.default_rng(0)
    w, c = np.asarray(finals[0]), np.asarray(finals[1])
    ratios = np.median(rng.choice(w, (2000, len(w))), axis=1) / np.median(
        rng.choice(c, (2000, len(c))), axis=1
    )
    low, high = np.percentile(ratios, [2.5, 97.5])
    lines += [
        "",
        f"Final best, warm / cold: {statistics.median(w) / statistics.median(c):.3f} "
        f"(bootstrap 95% CI {low:.3f}–{high:.3f}).",
        "",
        "Median best-so-far (tps) by trial:",
        "",
        "| trial | cold | warm |",
        "|---|---|---|",
    ]
    for i in (1, 2, 3, 5, 8, 10, 15, 20, 25, 30):
        if i <= args.trials:
            lines.append(
                f"| {i} | {statistics.median(c[i - 1] for c in cold):.1f} | "
                f"{statistics.median(c[i - 1] for c in hot):.1f} |"
            )
    lines += ["", "Workload mapping (`--warm-start auto`) from the target's baseline runs:", ""]
    lines += ["| candidate | workload | distance | metrics |", "|---|---|---|---|"]
    for c in mapping:
        d = "not scored" if c.distance is None else f"{c.distance:.3f}"
        lines.append(
            f"| `{c.experiment.name}` | {c.experiment.workload_name} | {d} | {c.metrics} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

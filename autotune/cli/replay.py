"""autotune replay and autotune verify: past experiments, offline or on a live server."""

from __future__ import annotations

import math
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from autotune.agent import Agent, materialize_workload
from autotune.baseline import DB_TYPES, STORAGES, PgtuneInput, pgtune_config
from autotune.cli._common import (
    DataDirOption,
    DsnOption,
    RestartCommandOption,
    StoreOption,
    console,
    fail,
    friendly,
    open_store,
    postgres_target,
)
from autotune.cli.tune import _Interrupted, _on_sigterm
from autotune.replay import (
    Arm,
    ArmSummary,
    Run,
    build_surrogate,
    result_json,
    run_interleaved,
    summarize_runs,
)
from autotune.replay import (
    replay as run_replay,
)
from autotune.spec import Config, Machine, Spec, parse_spec
from autotune.store import Experiment, Store
from autotune.tuner import TuningError, bootstrap_ratio_ci, experiment_info, summarize
from autotune.workloads import make_workload

ApplyOption = Annotated[
    str | None,
    typer.Option(
        "--apply",
        help="Apply a recorded config to a live server and verify it: best, or a trial number.",
    ),
]


def _recorded_spec(experiment: Experiment) -> Spec:
    """The experiment's spec, resolved on the machine it was recorded for (its bounds)."""
    recorded = experiment.settings.get("machine")
    machine = Machine(**recorded) if isinstance(recorded, dict) else Machine.local()
    return parse_spec(experiment.spec_content, experiment.spec_path, machine)


def _pick_config(store: Store, experiment: Experiment, which: str) -> tuple[str, Config]:
    """``best`` (the noise-aware best) or a trial number: its label and config."""
    if which == "best":
        summary = summarize(store, experiment)
        if summary.best is None:
            raise TuningError(f"experiment {experiment.name!r} has no successful trial")
        return f"best (trial {summary.best.number})", dict(summary.best.config)
    if not which.isdigit():
        raise TuningError(f"--apply/--config: give best or a trial number, not {which!r}")
    number = int(which)
    trial = next((t for t in store.trials(experiment) if t.number == number), None)
    if trial is None:
        raise TuningError(f"experiment {experiment.name!r} has no trial {number}")
    if not trial.ok:
        raise TuningError(f"trial {number} of {experiment.name!r} did not succeed ({trial.status})")
    return f"trial {number}", dict(trial.config)


def _verify(
    store: Store,
    experiment: Experiment,
    which: str,
    repeats: int,
    duration: float | None,
    pgtune: bool,
    db_type: str,
    storage: str,
    dsn: str | None,
    restart_command: str | None,
    data_dir: Path | None,
) -> None:
    """Default, the chosen config and pgtune's, measured interleaved on one live server."""
    if repeats < 2:
        raise TuningError("--repeats must be at least 2: a CI needs two runs of each config")
    spec = _recorded_spec(experiment)
    label, config = _pick_config(store, experiment, which)
    arms = [
        Arm("default", {}, "the spec's defaults"),
        Arm("best" if which == "best" else label, config, label),
    ]
    notes: list[str] = []
    if pgtune:
        host = Machine.local()
        if experiment.system != "postgres":
            raise TuningError(f"pgtune is for postgres, not {experiment.system!r}; add --no-pgtune")
        tuned = pgtune_config(spec, PgtuneInput(host.memory_bytes, host.cpus, db_type, storage))
        arms.append(
            Arm("pgtune", {k: tuned.config[k] for k in tuned.applied}, f"{db_type}, {storage}")
        )
        notes += [f"pgtune: {n}" for n in tuned.notes]
    restartable = dsn is None or restart_command is not None
    if not restartable:
        dropped = sorted({n for a in arms for n in a.config if spec.knobs[n].apply == "restart"})
        if dropped:
            arms = [
                Arm(a.label, {k: v for k, v in a.config.items() if k not in dropped}, a.note)
                for a in arms
            ]
            notes.append(
                "left out restart-class knobs (give --restart-command to apply them): "
                + ", ".join(dropped)
            )
    for note in notes:
        console.print(f"note: {note}", markup=False)
    length = duration if duration is not None else experiment.duration_s
    target = "managed sandbox" if dsn is None else "the --dsn server"
    console.print(
        f"verifying [bold]{experiment.name}[/]: {', '.join(a.label for a in arms)}; "
        f"{repeats} rounds in rotating order on {target}"
        + (f", {length:g}s each" if length else "")
    )
    info = experiment_info(experiment)
    system = postgres_target(dsn, restart_command, data_dir)(spec)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autotune-verify-") as tmp:
        workload_def = materialize_workload(info, Path(tmp))
        agent = Agent(system, make_workload(workload_def), length)

        def progress(run: Run | None, phase: str) -> None:
            if run is None:
                console.print(f"  {phase}…", style="dim")
            elif run.objective is not None:
                console.print(f"  round {run.round} {run.label}: {run.objective:.6g}")
            else:
                console.print(f"  round {run.round} {run.label}: [red]FAILED[/] {run.error}")

        interrupted = False
        try:
            agent.start(lambda phase: console.print(f"{phase} ({target})…"))
            runs = run_interleaved(
                agent, spec, arms, repeats, experiment.objective_metric, length, progress=progress
            )
        except (KeyboardInterrupt, _Interrupted):
            interrupted = True
            console.print("[yellow]interrupted: restoring the system and cleaning up…[/]")
        finally:
            # Whatever happened (a failed start or data load too), the system is restored
            # and the sandbox stopped; a second Ctrl-C must not skip that.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                agent.stop()
            finally:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, previous)
        if interrupted:
            raise typer.Exit(130)
    labels = [a.label for a in arms]
    summaries = summarize_runs(runs, labels, "default", experiment.direction)
    head_to_head = None
    if pgtune:
        head_to_head = _versus(runs, labels[1], "pgtune", experiment.direction)
    _print_verify(experiment, summaries, head_to_head, time.monotonic() - started)
    store.add_analysis(
        experiment,
        "verify",
        result_json(
            arms,
            runs,
            summaries,
            {
                "reference": "default",
                "config": which,
                "rounds": repeats,
                "duration_s": length,
                "target": target,
                "order": "rotating (round r starts with arm r mod n)",
                "settle_runs": 1,
                "notes": notes,
                "versus_pgtune": head_to_head,
            },
        ),
    )


def _versus(runs: list[Run], a: str, b: str, direction: str) -> dict[str, Any] | None:
    """``a`` against ``b``: ratio of medians (> 1: a is better) and its 95% CI."""
    va = [r.objective for r in runs if r.label == a and r.objective is not None]
    vb = [r.objective for r in runs if r.label == b and r.objective is not None]
    if not va or not vb:
        return None
    ratio, low, high = bootstrap_ratio_ci(va, vb, direction == "maximize")
    if math.isnan(ratio):
        return None
    ci = None if math.isnan(low) else [low, high]
    return {"a": a, "b": b, "ratio": ratio, "ci": ci}


def _fmt_ci(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"{low:.3f}–{high:.3f}"


def _short_verdict(arm: ArmSummary) -> str:
    """The table's verdict; the stored result keeps the full sentence (``verdict``)."""
    if arm.label == "default":
        return "reference"
    if arm.ratio is None:
        return "no comparison"
    change = f"{(arm.ratio - 1) * 100:+.1f}%"
    if arm.significant is None:
        return f"{change}, no CI"
    return f"{change}, " + ("significant" if arm.significant else "NOT significant")


def _print_verify(
    experiment: Experiment,
    summaries: list[ArmSummary],
    versus: dict[str, Any] | None,
    wall_s: float,
) -> None:
    from rich.table import Table

    metric = f"{experiment.objective_metric} ({experiment.direction})"
    table = Table(title=f"verify {experiment.name}: {metric}, 95% bootstrap CIs")
    for column in ("config", "runs", "median", "ratio vs default", "95% CI", "verdict"):
        table.add_column(column, justify="right" if column in ("runs", "median") else "left")
    for s in summaries:
        table.add_row(
            s.label,
            f"{s.runs}" + (f" ({s.failed} failed)" if s.failed else ""),
            "—" if s.median is None else f"{s.median:.6g}",
            "1" if s.label == "default" else ("—" if s.ratio is None else f"{s.ratio:.3f}"),
            "" if s.label == "default" else _fmt_ci(s.ci_low, s.ci_high),
            _short_verdict(s),
        )
    console.print(table)
    if versus is not None:
        ci = versus["ci"]
        significant = ci is not None and (ci[0] > 1 or ci[1] < 1)
        console.print(
            f"{versus['a']} vs pgtune: ratio {versus['ratio']:.3f}, 95% CI "
            f"{_fmt_ci(*(ci or [None, None]))}: "
            + ("significant" if significant else "NOT significant (CI includes 1)")
        )
    console.print(
        f"[dim]ratios > 1 are better; NOT significant: the 95% CI includes 1. Each round runs "
        f"every config once, in rotating order, after one discarded settling run; "
        f"{wall_s:.0f}s in all[/]"
    )


@friendly
def verify(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    repeats: Annotated[int, typer.Option(help="Rounds: runs of each config.")] = 5,
    config: Annotated[
        str, typer.Option(help="The config to verify: best, or a trial number.")
    ] = "best",
    duration: Annotated[
        float | None, typer.Option(help="Measured seconds per run (default: the experiment's).")
    ] = None,
    pgtune: Annotated[
        bool, typer.Option("--pgtune/--no-pgtune", help="Also measure pgtune's configuration.")
    ] = True,
    db_type: Annotated[str, typer.Option(help=f"pgtune: {', '.join(DB_TYPES)}.")] = "oltp",
    storage: Annotated[str, typer.Option(help=f"pgtune: {', '.join(STORAGES)}.")] = "ssd",
    dsn: DsnOption = None,
    restart_command: RestartCommandOption = None,
    data_dir: DataDirOption = None,
    store: StoreOption = None,
) -> None:
    """Measure the best config against the default and pgtune, interleaved, with CIs."""
    if dsn is None and (restart_command or data_dir):
        fail("--restart-command and --data-dir need --dsn")
    with open_store(store) as st:
        experiment = st.require_experiment(name)
        try:
            _verify(
                st, experiment, config, repeats, duration, pgtune, db_type, storage,
                dsn, restart_command, data_dir,
            )  # fmt: skip
        except ValueError as exc:  # pgtune's input
            fail(str(exc))


@friendly
def replay(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    optimizer: Annotated[
        str | None,
        typer.Option(help="Offline: run this optimiser against a surrogate of the trials."),
    ] = None,
    trials: Annotated[int, typer.Option(min=2, help="Offline: evaluations per run.")] = 30,
    seeds: Annotated[int, typer.Option(min=1, help="Offline: runs, seeds 0..N-1.")] = 3,
    noise: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Offline: noise sd of the objective (default: as seen between repeats).",
            show_default=False,
        ),
    ] = None,
    apply: ApplyOption = None,
    repeats: Annotated[int, typer.Option(help="With --apply: rounds of each config.")] = 5,
    duration: Annotated[
        float | None, typer.Option(help="With --apply: measured seconds per run.")
    ] = None,
    dsn: DsnOption = None,
    restart_command: RestartCommandOption = None,
    data_dir: DataDirOption = None,
    store: StoreOption = None,
) -> None:
    """Replay an experiment: offline against a surrogate (--optimizer), or live (--apply)."""
    if (optimizer is None) == (apply is None):
        fail("give one of --optimizer (offline) or --apply best|TRIAL (live)")
    with open_store(store) as st:
        experiment = st.require_experiment(name)
        if apply is not None:
            _verify(
                st, experiment, apply, repeats, duration,
                experiment.system == "postgres", "oltp", "ssd",
                dsn, restart_command, data_dir,
            )  # fmt: skip
            return
        assert optimizer is not None
        _replay_offline(st, experiment, optimizer, trials, seeds, noise)


def _replay_offline(
    store: Store,
    experiment: Experiment,
    optimizer: str,
    trials: int,
    seeds: int,
    noise: float | None,
) -> None:
    from autotune.bench.competitors import competitor_names, unavailable

    if optimizer not in competitor_names():
        fail(f"unknown optimizer {optimizer!r}; choose from {', '.join(competitor_names())}")
    reason = unavailable(optimizer)
    if reason is not None:
        fail(f"optimizer {optimizer!r}: {reason}")
    started = time.monotonic()
    surrogate = build_surrogate(store, experiment, noise)
    metric = experiment.objective_metric
    r2 = "n/a" if surrogate.r2_cv is None else f"{surrogate.r2_cv:.2f}"
    console.print(
        f"surrogate: random forest on {surrogate.trials} trials of {experiment.name} "
        f"(5-fold CV R² {r2}), noise sd {surrogate.noise_sd:.4g}"
    )
    runs = run_replay(
        surrogate,
        optimizer,
        trials,
        seeds,
        experiment.direction,
        progress=lambda s: console.print(f"  seed {s}…", style="dim"),
    )
    best = surrogate.recorded_best
    recorded_n = len(store.trials(experiment, finished_only=True))
    console.print(
        f"recorded best   {best.objective:.6g} {metric} measured (trial {best.number} of "
        f"{recorded_n}); the surrogate predicts {surrogate.recorded_best_predicted:.6g} for it"
    )
    for run in runs:
        reached = (
            f"first tried a config as good as the recorded best (predicted) at trial "
            f"{run.reached_recorded_at}"
            if run.reached_recorded_at is not None
            else "never tried a config as good as the recorded best (predicted)"
        )
        console.print(
            f"{optimizer} seed {run.seed}  best {run.best:.6g} {metric} (predicted) at trial "
            f"{run.best_trial} of {trials}; {reached}"
        )
    median = statistics.median(r.best for r in runs)
    predicted = surrogate.recorded_best_predicted
    ratio = median / predicted if predicted else math.nan
    oriented = ratio if experiment.direction == "maximize" else 1 / ratio
    console.print(
        f"replay {optimizer}: median best {median:.6g} over {seeds} seeds = {oriented:.3f}× "
        f"the recorded best's prediction (> 1 is better); {time.monotonic() - started:.1f}s"
    )
    store.add_analysis(
        experiment,
        "replay",
        {
            "optimizer": optimizer,
            "trials": trials,
            "seeds": seeds,
            "surrogate": {
                "trials": surrogate.trials,
                "r2_cv": surrogate.r2_cv,
                "noise_sd": surrogate.noise_sd,
            },
            "recorded_best": {
                "trial": best.number,
                "measured": best.objective,
                "predicted": surrogate.recorded_best_predicted,
            },
            "runs": [
                {
                    "seed": r.seed,
                    "best": r.best,
                    "best_trial": r.best_trial,
                    "reached_recorded_at": r.reached_recorded_at,
                    "curve": r.curve,
                }
                for r in runs
            ],
            "median_best": median,
        },
    )

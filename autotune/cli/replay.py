"""autotune replay and autotune verify: past experiments, offline or on a live server."""

from __future__ import annotations

import math
import signal
import statistics
import time
from pathlib import Path
from typing import Annotated

import typer

from autotune._tmp import OwnedTempDir
from autotune.agent import Agent, materialize_workload
from autotune.baseline import DB_TYPES, STORAGES
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
from autotune.cli._format import verification_table
from autotune.cli._signals import _Interrupted, _on_sigterm
from autotune.replay import build_surrogate, result_json, run_interleaved
from autotune.replay import replay as run_replay
from autotune.spec import Machine
from autotune.store import Experiment, Store
from autotune.tuner import (
    VerifyPolicy,
    VerifyRun,
    experiment_info,
    experiment_spec,
    paired_between,
    reverify_arms,
)
from autotune.workloads import make_workload

ApplyOption = Annotated[
    str | None,
    typer.Option(
        "--apply",
        help="Apply a recorded config to a live server and verify it: best, or a trial number.",
    ),
]


def _verify(
    store: Store,
    experiment: Experiment,
    which: str,
    policy: VerifyPolicy,
    duration: float | None,
    pgtune: bool,
    db_type: str | None,
    storage: str,
    dsn: str | None,
    restart_command: str | None,
    data_dir: Path | None,
) -> None:
    """The default, the chosen config and pgtune's, in paired rounds on one live server:
    the session's own verification policy, run again."""
    spec = experiment_spec(experiment)
    # A restart-class change is undone through postgresql.auto.conf when the server
    # no longer starts: an existing server needs both.
    restartable = dsn is None or (restart_command is not None and data_dir is not None)
    arms, notes = reverify_arms(
        store, experiment, which, machine=Machine.local(), pgtune=pgtune, db_type=db_type,
        storage=storage, restartable=restartable,
    )  # fmt: skip
    for note in notes:
        console.print(f"note: {note}", markup=False)
    length = duration if duration is not None else experiment.duration_s
    target = "managed sandbox" if dsn is None else "the --dsn server"
    rounds = (
        f"{policy.min_rounds} rounds"
        if policy.min_rounds == policy.max_rounds
        else f"{policy.min_rounds} to {policy.max_rounds} rounds (until the best's 95% CI "
        f"is within ±{policy.precision:.1%})"
    )
    if policy.twin:
        contenders = ", ".join(a.label for a in arms if a.label != "default")
        what = f"{contenders}, each beside the default on a twin sandbox"
        how = "each run beside the default on a twin sandbox, in alternating slices"
    else:
        what = ", ".join(a.label for a in arms)
        how = "every config once, in rotating order"
    console.print(
        f"verifying [bold]{experiment.name}[/]: {what}; "
        f"{rounds} in rotating order on {target}" + (f", {length:g}s each" if length else "")
    )
    info = experiment_info(experiment)
    system = postgres_target(dsn, restart_command, data_dir)(spec)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    with OwnedTempDir("autotune-verify-") as tmp:
        workload_def = materialize_workload(info, Path(tmp))
        agent = Agent(system, make_workload(workload_def), length)

        def progress(run: VerifyRun | None, phase: str) -> None:
            if run is None:
                console.print(f"  {phase}…", style="dim")
            elif run.value is not None and run.reference is not None:
                console.print(
                    f"  round {run.round} {run.arm}: {run.value:.6g}"
                    f" beside default {run.reference:.6g}"
                )
            elif run.value is not None:
                console.print(f"  round {run.round} {run.arm}: {run.value:.6g}")
            else:
                console.print(f"  round {run.round} {run.arm}: [red]FAILED[/] {run.error}")

        interrupted = False
        try:
            agent.start(lambda phase: console.print(f"{phase} ({target})…"))
            runs, verification = run_interleaved(
                agent, spec, arms, policy, experiment.objective_metric, experiment.direction,
                length, progress=progress,
            )  # fmt: skip
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
    head_to_head = None
    if pgtune:
        head_to_head = paired_between(
            runs, arms[1].label, "pgtune", verification.rounds, experiment.direction
        )
    console.print(
        verification_table(
            verification,
            f"verify {experiment.name}: {experiment.objective_metric} "
            f"({experiment.direction}), {verification.rounds} paired rounds",
        )
    )
    if head_to_head is not None:
        verdict = "significant" if head_to_head.significant else "NOT significant (CI includes 1)"
        console.print(
            f"{arms[1].label} vs pgtune: ratio {head_to_head.ratio:.3f}, 95% CI "
            f"{head_to_head.low:.3f}–{head_to_head.high:.3f} (paired): {verdict}"
        )
    console.print(f"verdict: {verification.verdict}")
    console.print(
        f"[dim]ratios > 1 are better, each the geometric mean of per-round ratios; NOT "
        f"significant: the 95% CI includes 1. Each round: {how}, each from the freshly "
        f"loaded data; stopped: {verification.stopped}; "
        f"{time.monotonic() - started:.0f}s in all[/]"
    )
    store.add_analysis(
        experiment,
        "verify",
        result_json(
            arms,
            runs,
            verification,
            {
                "reference": "default",
                "config": which,
                "rounds": verification.rounds,
                "policy": policy.to_json(),
                "duration_s": length,
                "target": target,
                "order": "rotating (round r starts with arm r mod n)",
                "notes": notes,
                "versus_pgtune": None
                if head_to_head is None
                else {"a": arms[1].label, "b": "pgtune", **head_to_head.to_json()},
            },
        ),
    )


@friendly
def verify(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            "--repeats",
            min=2,
            max=100,
            show_default=False,
            help="Exactly this many rounds. Default: from --min-rounds until the best's CI "
            "is within ±--precision, at most --max-rounds.",
        ),
    ] = None,
    min_rounds: Annotated[int, typer.Option(min=2, max=100, help="At least this many.")] = 3,
    max_rounds: Annotated[int, typer.Option(min=2, max=100, help="At most this many.")] = 10,
    precision: Annotated[
        float, typer.Option(min=0.001, max=0.5, help="Stop once the best's CI is within ±this.")
    ] = 0.03,
    config: Annotated[
        str, typer.Option(help="The config to verify: best, or a trial number.")
    ] = "best",
    duration: Annotated[
        float | None, typer.Option(help="Measured seconds per run (default: the experiment's).")
    ] = None,
    pgtune: Annotated[
        bool, typer.Option("--pgtune/--no-pgtune", help="Also measure pgtune's configuration.")
    ] = True,
    db_type: Annotated[
        str | None,
        typer.Option(
            "--db-type",
            "--pgtune-type",
            help=f"pgtune: {', '.join(DB_TYPES)}. Default: oltp for pgbench, dw for a query "
            "set, else mixed.",
            show_default=False,
        ),
    ] = None,
    storage: Annotated[str, typer.Option(help=f"pgtune: {', '.join(STORAGES)}.")] = "ssd",
    dsn: DsnOption = None,
    restart_command: RestartCommandOption = None,
    data_dir: DataDirOption = None,
    store: StoreOption = None,
) -> None:
    """Measure the best config against the default and pgtune in paired rounds, with CIs."""
    if dsn is None and (restart_command or data_dir):
        fail("--restart-command and --data-dir need --dsn")
    try:
        policy = VerifyPolicy(
            precision=precision,
            min_rounds=rounds or min_rounds,
            max_rounds=rounds or max_rounds,
            contenders=1,
            pgtune=pgtune,
            twin=dsn is None,  # a managed sandbox measures each config beside a twin
        )
    except ValueError as exc:
        fail(str(exc))
    with open_store(store) as st:
        experiment = st.require_experiment(name)
        try:
            _verify(
                st, experiment, config, policy, duration, pgtune, db_type, storage,
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
            policy = VerifyPolicy(
                min_rounds=repeats, max_rounds=repeats, contenders=1, twin=dsn is None
            )
            _verify(
                st, experiment, apply, policy, duration,
                experiment.system == "postgres", None, "ssd",
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
    runs_text = (
        f"median of {surrogate.recorded_best_runs} runs"
        if (surrogate.recorded_best_runs > 1)
        else "one run"
    )
    predicted = surrogate.recorded_best_predicted
    console.print(
        f"recorded best   trial {best.number} of {recorded_n} (as `autotune best` names it): "
        f"{surrogate.recorded_best_value:.6g} {metric} measured ({runs_text}); the surrogate "
        f"predicts {predicted:.6g} for it"
    )
    for run in runs:
        # The incumbent is chosen on noisy values, so its prediction can fall short of a
        # config the run tried earlier: both are said, each for what it is.
        reached = (
            f"it first tried a config predicted at least {predicted:.6g} at trial "
            f"{run.reached_recorded_at}"
            if run.reached_recorded_at is not None
            else f"it never tried a config predicted at least {predicted:.6g}"
        )
        console.print(
            f"{optimizer} seed {run.seed}  incumbent (best observed) predicted {run.best:.6g} "
            f"{metric}, found at trial {run.best_trial} of {trials}; {reached}"
        )
    median = statistics.median(r.best for r in runs)
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
                "measured": surrogate.recorded_best_value,
                "runs": surrogate.recorded_best_runs,
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

"""autotune tune: one local session, an in-process agent beside the tuner."""

from __future__ import annotations

import datetime
import re
import signal
import time
from typing import Annotated, Any

import typer

from autotune.agent import AgentRunner
from autotune.cli._common import (
    DataDirOption,
    DsnOption,
    KnobsDirOption,
    RestartCommandOption,
    StoreOption,
    console,
    fail,
    friendly,
    load_system_spec,
    open_store,
    postgres_target,
)
from autotune.cli._progress import _print_summary, _Progress
from autotune.cli._remote import _tune_remote
from autotune.cli._signals import _Interrupted, _on_sigterm, interrupt_once, raise_if_lost
from autotune.cli._tune_inputs import recorded_experiment, top_knobs_option
from autotune.optimizers import OPTIMIZERS
from autotune.spec import Config, Machine
from autotune.store import StoreError, check_name
from autotune.systems import applier_kind, known_kinds
from autotune.systems.postgres import public_dsn
from autotune.tuner import (
    DEFAULT_OPTIMIZER,
    MAX_ROUNDS,
    PRECISION,
    SAFETY_MARGIN,
    LocalClient,
    Scheduler,
    SessionOptions,
    Summary,
    check_repeats,
    check_warm_start,
    default_repeats,
    open_experiment,
    recorded_defaults,
    resolve_start_with,
    select_knobs,
    summarize,
    verify_option,
)
from autotune.workloads import load_workload


@friendly
def tune(
    system: Annotated[
        str | None,
        typer.Option(
            help="System: a built-in spec name or a spec file. A resume (--experiment) "
            "takes the recorded one.",
            show_default=False,
        ),
    ] = None,
    workload: Annotated[
        str | None,
        typer.Option(
            help="A built-in workload name or a workload file. A resume takes the recorded one.",
            show_default=False,
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default=False,
            help="Total trials, the baseline included. Default 10; a resume keeps the "
            "recorded budget.",
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Measured seconds per trial (default: the workload's).")
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option(
            help=f"One of: {', '.join(sorted(OPTIMIZERS))}. Default {DEFAULT_OPTIMIZER}.",
            show_default=False,
        ),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(
            min=0,
            show_default=False,
            help="Race the best configs in the budget's last N search trials (re-measuring "
            "them). Default 0: the verification after the search is what the claim rests "
            "on; a resume keeps the recorded N.",
        ),
    ] = None,
    verify: Annotated[
        bool | None,
        typer.Option(
            "--verify/--no-verify",
            show_default=False,
            help="End with a paired verification: the default, the best configs and pgtune "
            "in interleaved rounds; the summary's best and its CI come from these rounds "
            "only. Default: from 10 trials up.",
        ),
    ] = None,
    precision: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            max=0.5,
            show_default=False,
            help="Verification: add rounds until the best's 95% CI of its ratio to the "
            "default is within ±this. Default 0.03.",
        ),
    ] = None,
    max_rounds: Annotated[
        int | None,
        typer.Option(
            min=2,
            max=100,
            show_default=False,
            help="Verification: at most this many rounds. Default 10.",
        ),
    ] = None,
    controls: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=1000,
            show_default=False,
            help="Drift controls: run the default again every N search trials and give the "
            "optimiser each trial relative to the latest one. Default 0: none.",
        ),
    ] = None,
    safety_margin: Annotated[
        float | None,
        typer.Option(
            "--safety-margin",
            min=0,
            max=1,
            show_default=False,
            help="Do not try configs the model predicts below (1 - M) of the baseline "
            "(throughput x (1 - M), latency / (1 - M)), e.g. 0.5. Default 1: no floor.",
        ),
    ] = None,
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time-budget",
            min=1,
            show_default=False,
            help="Wall seconds: once passed, no new trial starts and the session ends when "
            "the running one is done. Counts from this run's start (a resume restarts it).",
        ),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Name; re-running with it resumes the experiment.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed. Default 0.")] = None,
    knobs: Annotated[
        str | None,
        typer.Option(
            help="Knobs to tune: a,b,c, group:NAME from the spec, or top:K with --from "
            "(the K most important knobs by a past experiment's analysis). Default: all."
        ),
    ] = None,
    from_experiment: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="With --knobs top:K: the experiment whose knob ranking (autotune analyze) "
            "picks the knobs.",
        ),
    ] = None,
    warm_start: Annotated[
        str | None,
        typer.Option(
            "--warm-start",
            help="Seed the optimiser with a past experiment's trials: none, auto (the most "
            "similar past workload, by internal metrics) or an experiment name. Default none.",
            show_default=False,
        ),
    ] = None,
    start_with: Annotated[
        str | None,
        typer.Option(
            "--start-with",
            help="Try this config first, right after the baseline: none, or pgtune "
            "(pgtune's config for this machine, postgres only). Default: pgtune for "
            "postgres when the knobs tuned can take its config, else none.",
            show_default=False,
        ),
    ] = None,
    allow_unsafe: Annotated[
        bool, typer.Option("--allow-unsafe", help="Also tune knobs that risk committed data.")
    ] = False,
    dsn: DsnOption = None,
    restart_command: RestartCommandOption = None,
    data_dir: DataDirOption = None,
    apply_best: Annotated[
        bool, typer.Option("--apply-best", help="With --dsn: leave the best config applied.")
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(help="Submit to this autotune server and follow it; its agents run it."),
    ] = None,
    parallel: Annotated[
        int | None,
        typer.Option(min=1, max=256, help="With --server: trials in flight at once. Default 1."),
    ] = None,
    allow_colocated: Annotated[
        bool | None,
        typer.Option(
            "--allow-colocated/--no-allow-colocated",
            show_default=False,
            help="With --server: let agents on one host run trials side by side (they measure "
            "each other's load). Default: one trial per host at a time.",
        ),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="AUTOTUNE_ADMIN_TOKEN",
            show_envvar=True,
            show_default=False,
            help="With --server: the server's admin token (prefer the environment variable).",
        ),
    ] = None,
    knobs_dir: KnobsDirOption = None,
    store: StoreOption = None,
) -> None:
    """Tune a system: the baseline, the optimiser's search, then a paired verification."""
    if experiment is not None:
        try:
            check_name(experiment)  # the API's rule: every name must be reachable there too
        except StoreError as exc:
            fail(f"--experiment: {exc}")
    if system is None or workload is None or trials is None:
        recorded_exp = recorded_experiment(experiment, store) if server is None else None
        if recorded_exp is None and (system is None or workload is None):
            fail(
                "a new experiment needs --system and --workload"
                + (f" (no experiment {experiment!r} in the store to resume)" if experiment else "")
                + ("; with --server, a resume names them too" if server and experiment else "")
            )
        if recorded_exp is not None:
            system = system or recorded_exp.spec_path
            workload = workload or recorded_exp.workload_path or recorded_exp.workload_name
            trials = recorded_exp.budget if trials is None else trials
            if not allow_unsafe and recorded_exp.settings.get("allow_unsafe"):
                allow_unsafe = True  # as recorded: the search space must not change
            target = str(recorded_exp.settings.get("target") or "managed sandbox")
            if dsn is None and target != "managed sandbox":
                fail(
                    f"experiment {experiment!r} tuned an existing server ({target}); pass "
                    "--dsn again (a password is never stored) with its --restart-command "
                    "and --data-dir"
                )
    assert system is not None and workload is not None
    trials = 10 if trials is None else trials
    spec = load_system_spec(system, knobs_dirs=knobs_dir or ())
    wl = load_workload(workload)
    if from_experiment is not None and not (knobs or "").startswith("top:"):
        fail("--from goes with --knobs top:K")
    if (knobs or "").startswith("top:"):
        knobs = top_knobs_option(knobs or "", from_experiment, spec, store, allow_unsafe)
    if not spec.drives(wl.system):
        fail(f"workload {wl.name!r} is for system {wl.system!r}, not {spec.system!r}")
    kind = applier_kind(spec)
    if kind not in known_kinds():
        fail(f"spec {spec.path}: no applier {kind!r} (known: {', '.join(known_kinds())})")
    if server is not None:
        if dsn or restart_command or data_dir or apply_best or store:
            fail(
                "--dsn, --restart-command, --data-dir, --apply-best and --store are for local "
                "sessions; with --server, agents name their targets and the server its store"
            )
        request: dict[str, Any] = {
            "spec": spec.source,
            "spec_path": spec.path,
            "workload": wl.source,
            "workload_name": wl.name,
            "workload_path": str(wl.path),
            "files": wl.files,
            "budget": trials,
        }
        # Left out, a setting takes the server's default, or the recorded value on a resume.
        optional = {
            "optimizer": optimizer,
            "seed": seed,
            "duration_s": duration,
            "parallelism": parallel,
            "allow_colocated": allow_colocated,
            "allow_unsafe": allow_unsafe or None,
            "repeats": repeats,
            "verify": verify,
            "precision": precision,
            "max_rounds": max_rounds,
            "controls": controls,
            "safety_margin": safety_margin,
            "time_budget_s": time_budget,
            "warm_start": warm_start,
            "start_with": start_with,
        }
        request.update({k: v for k, v in optional.items() if v is not None})
        if knobs is not None:
            names = [n.strip() for n in knobs.split(",") if n.strip()]
            request["knobs"] = knobs.strip() if knobs.strip().startswith("group:") else names
        name = experiment or default_name(spec.system, wl.name)
        _tune_remote(server, admin_token, spec, {"name": name, **request})
        return
    if parallel is not None or allow_colocated is not None:
        fail(
            "--parallel and --allow-colocated need --server: a local session runs one trial "
            "at a time"
        )
    if dsn is None and (restart_command or data_dir or apply_best):
        fail("--restart-command, --data-dir and --apply-best need --dsn")
    machine = Machine.local()
    with open_store(store) as st:
        name = experiment or default_name(spec.system, wl.name)
        recorded = st.experiment(name)
        if recorded is not None:  # the service's rule: tuner.recorded_defaults
            kept = recorded_defaults(recorded, trials)
            optimizer = optimizer or kept.get("optimizer")
            seed = kept.get("seed") if seed is None else seed
            duration = kept.get("duration_s") if duration is None else duration
            if knobs is None:
                knobs = ",".join(kept.get("knobs", []))
            warm_start = kept.get("warm_start") if warm_start is None else warm_start
            start_with = kept.get("start_with") if start_with is None else start_with
            precision = kept.get("precision") if precision is None else precision
            max_rounds = kept.get("max_rounds") if max_rounds is None else max_rounds
            controls = kept.get("controls") if controls is None else controls
            if safety_margin is None:
                safety_margin = kept.get("safety_margin")
            repeats = kept.get("repeats") if repeats is None else repeats
            allow_unsafe = allow_unsafe or bool(kept.get("allow_unsafe"))
        optimizer = optimizer or DEFAULT_OPTIMIZER
        seed = 0 if seed is None else seed
        repeats = default_repeats(trials) if repeats is None else repeats
        check_repeats(trials, repeats)
        if optimizer not in OPTIMIZERS:
            fail(f"unknown optimizer {optimizer!r}; choose one of {', '.join(sorted(OPTIMIZERS))}")
        warm_start = check_warm_start(st, warm_start, spec.system, wl.objective_metric)
        # A restart-class change is undone through postgresql.auto.conf when the server
        # no longer starts: an existing server needs both.
        restartable = dsn is None or (restart_command is not None and data_dir is not None)
        selection = select_knobs(spec, knobs, allow_unsafe=allow_unsafe, restartable=restartable)
        for note in selection.notes:
            console.print(f"note: {note}")
        memory = {"memory_bytes": machine.memory_bytes, "cpus": machine.cpus}
        start_with, left = resolve_start_with(
            start_with, spec, selection.names, memory, wl.source, restartable
        )
        if left:
            console.print(f"note: {left} (--start-with none to silence)")
        if dsn is not None:
            console.print(
                "note: an existing server's database is its owner's: trials do not start "
                "from a fresh copy of the data, each one sees what earlier trials wrote"
            )
        options = SessionOptions(
            name=name,
            optimizer=optimizer,
            seed=seed,
            duration_s=duration,
            knobs=selection.names,
            allow_unsafe=allow_unsafe,
            target="managed sandbox" if dsn is None else public_dsn(dsn),
            machine=memory,
            budget=trials,
            repeats=repeats,
            time_budget_s=time_budget,
            warm_start=warm_start,
            start_with=start_with,
            verify=verify_option(
                trials,
                verify,
                precision or PRECISION,
                max_rounds or MAX_ROUNDS,
                # A managed PostgreSQL sandbox can start a twin to measure beside.
                twin=dsn is None and spec.system == "postgres" and not spec.parts,
            ),
            restartable=restartable,
            controls=controls or 0,
            safety_margin=SAFETY_MARGIN if safety_margin is None else safety_margin,
        )
        exp, resumed = open_experiment(st, spec, wl, options)
        done = sum(t.searched for t in st.trials(exp, finished_only=True))
        verb = "resuming" if resumed else "starting"
        console.print(
            f"{verb} experiment [bold]{name}[/]: {spec.system} × {wl.name}, "
            f"{len(selection.names)} knobs, optimizer {optimizer}, {trials} trials"
            + (f", the last {repeats} re-measuring the best" if repeats else "")
            + (", then a paired verification" if options.verify else "")
            + (f", at most {time_budget:g}s" if time_budget else "")
            + (f", warm start {warm_start}" if warm_start != "none" else "")
            + (f", starting from {start_with}'s config" if start_with != "none" else "")
            + (f" ({done} recorded)" if resumed else "")
        )
        if done >= trials and options.verify is None:
            console.print(f"already {done} trials recorded; raise --trials to run more")
            _print_summary(spec, summarize(st, exp), 0.0, 0.0)
            return

        make_system = postgres_target(dsn, restart_command, data_dir)
        # The same loop as `autotune agent`, with the tuner in-process.
        measure_s = duration or wl.duration_s or 30.0
        events = _Progress(trials, measure_s + wl.warmup_s + 2, wl.objective_metric, wl.direction)
        runner = AgentRunner(LocalClient(Scheduler(st), experiment=name), make_system, events)
        events.runner = runner
        events.defaults = spec.defaults()
        events.where = "managed sandbox" if dsn is None else public_dsn(dsn)
        # Ctrl-C must work even when a parent shell started us with SIGINT ignored
        # (as `cmd &` does): cleanup depends on it.
        signal.signal(signal.SIGINT, interrupt_once)
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        t_session = time.monotonic()
        interrupted = False
        summary: Summary | None = None
        keep: Config | None = None
        try:
            with events:
                runner.run(until_idle=True)
                raise_if_lost()  # one that landed after the last trial's phases
            summary = summarize(st, exp)
            trusted = summary.verification is None or summary.verified
            if apply_best and summary.best is not None and trusted:
                keep = summary.best.config
        except (KeyboardInterrupt, _Interrupted):
            interrupted = True
            console.print("[yellow]interrupted: restoring the system and cleaning up…[/]")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
            try:
                runner.close(keep)
            finally:
                # After an interrupt, further Ctrl-Cs are ignored until we have exited.
                signal.signal(signal.SIGINT, signal.SIG_IGN if interrupted else interrupt_once)
                signal.signal(signal.SIGTERM, previous)
        summary = summary if summary is not None else summarize(st, exp)
        wall_s = time.monotonic() - t_session
        if time_budget is not None and not interrupted and summary.trials < trials:
            console.print(
                f"time budget of {time_budget:g}s reached: {summary.trials} of {trials} trials run"
            )
        ended = st.analyses(exp, "search")
        why = ended[-1].result if ended else {}
        if why.get("ended") == "exhausted":
            console.print(
                f"note: the search space holds no untried valid config: the search ended "
                f"after {why.get('trials')} of {trials} trials"
            )
        elif why.get("ended") == "baseline failed":
            console.print(
                f"[red]error:[/] the spec's defaults (the baseline) failed twice, so nothing "
                f"else was tried: {why.get('error')}. Fix the defaults in {spec.path}, or "
                "leave the failing knob out with --knobs",
                soft_wrap=True,
            )
        _print_summary(spec, summary, wall_s, events.setup_s, runner.measured_s)
        if keep is not None:
            console.print("the best config was left applied (--apply-best)")
        elif apply_best and not interrupted:
            console.print("--apply-best: nothing applied, the original settings are back")
        if interrupted:
            console.print(f"resume with: autotune tune … --experiment {name}")
            raise typer.Exit(130)
        if why.get("ended") == "baseline failed":
            raise typer.Exit(1)


def default_name(system: str, workload: str) -> str:
    """``postgres-pgbench-tpcb-20261202-161500``: a valid name ('+' of a composite is '_')."""
    stamp = f"{datetime.datetime.now():%Y%m%d-%H%M%S}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{system}-{workload}-{stamp}")[:128]

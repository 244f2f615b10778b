"""autotune tune: one local session, an in-process agent beside the tuner."""

from __future__ import annotations

import datetime
import math
import re
import signal
import threading
import time
from types import FrameType
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from autotune.agent import AgentRunner, ExperimentInfo, Lease, RunnerEvents
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
from autotune.cli._format import formatted, render, verification_table
from autotune.optimizers import OPTIMIZERS
from autotune.service import AdminClient, ExperimentOut, ServiceError, TrialOut
from autotune.spec import Config, Machine, Spec
from autotune.store import Experiment, StoreError, Trial, check_name, now
from autotune.systems import applier_kind, known_kinds
from autotune.systems.postgres import public_dsn
from autotune.tuner import (
    DEFAULT_OPTIMIZER,
    MAX_ROUNDS,
    PRECISION,
    REFERENCE_METRIC,
    LocalClient,
    Scheduler,
    SessionOptions,
    Summary,
    capacity,
    check_repeats,
    check_warm_start,
    default_repeats,
    describe,
    open_experiment,
    pgtune_db_type,
    select_knobs,
    summarize,
    summary_of,
    unstable_line,
    verify_option,
)
from autotune.workloads import load_workload

CAPACITY_EVERY_S = 10.0  # how often a follow asks which agents can run its trials


class _Progress(RunnerEvents):
    """A progress bar per trial and one line per finished trial."""

    def __init__(self, n_trials: int, expected_s: float, objective: str, direction: str) -> None:
        self.n_trials = n_trials
        self.direction = direction
        self.expected_s = expected_s
        self.objective = objective
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.t0 = 0.0
        self.label = ""
        self.where = ""
        self.runner: AgentRunner | None = None
        self.setup_s = 0.0
        self.baseline: Trial | None = None
        self.defaults: Config = {}  # the spec's, to say how a baseline as found differs
        self.verifying = False
        self.level: float | None = None  # the latest drift control's value
        self.round_default: dict[int, float] = {}  # verification round -> its default's value
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> _Progress:
        self.progress.start()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.progress.stop()

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            if self.task is not None:
                self.progress.update(self.task, completed=time.monotonic() - self.t0)

    def setup(self, experiment: ExperimentInfo, phase: str) -> None:
        console.print(f"{phase} ({self.where})…")

    def trial_started(self, lease: Lease) -> None:
        if self.runner is not None and self.runner.agent is not None and not self.setup_s:
            self.setup_s = self.runner.agent.setup_s
            console.print(f"setup done in {self.setup_s:.1f}s")
        self.label = lease.label
        if lease.phase == "search":
            self.label = self.label.replace(
                f"trial {lease.number}", f"trial {lease.number}/{self.n_trials}", 1
            )
        elif lease.phase == "verify" and not self.verifying:
            self.verifying = True
            how = (
                "each run beside the default on a twin server, in alternating slices"
                if lease.reference is not None
                else "one run each per round in rotating order"
            )
            pgtune = (
                f"pgtune ({pgtune_db_type(lease.experiment.workload_content)}, as for this "
                "workload)"
                if lease.experiment.system == "postgres"
                else "pgtune"
            )
            console.print(
                f"search done: verifying the best configs and {pgtune} against the default "
                f"in paired rounds, {how}"
            )
        self.t0 = time.monotonic()
        expected = self.expected_s * min(1.0, lease.fidelity)
        self.task = self.progress.add_task(self.label, total=expected)

    def phase(self, name: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, description=f"{self.label} · {name}")

    def trial_finished(self, lease: Lease, trial: Trial) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        if trial.phase == "verify":
            self._verify_line(trial)
            return
        found = _found(trial, self.defaults) if trial.is_baseline else {}
        if trial.is_baseline and not trial.repeat and trial.ok:
            self.baseline = trial
            if found:
                shown = ", ".join(f"{k}={v}" for k, v in list(found.items())[:4])
                more = f" and {len(found) - 4} more" if len(found) > 4 else ""
                console.print(
                    f"baseline: the configuration the target runs today, not the spec's "
                    f"defaults ({len(found)} knob(s) differ: {shown}{more}); a verification "
                    "measures the spec's defaults too",
                    markup=False,
                )
        if not trial.ok:
            # A failed baseline is the scheduler's to judge (tried again once, then the
            # search ends and the summary says why): the same rule as the service's.
            what = ""
            if trial.is_baseline:
                what = f" (the baseline: {'as the target ran' if found else 'the spec defaults'})"
            console.print(f"trial {trial.number:>3}  [red]FAILED[/]{what}  {trial.error}")
            if trial.log_excerpt:
                last = trial.log_excerpt.strip().splitlines()
                console.print("             " + (last[0] if last else ""), markup=False)
            return
        delta = ""
        base = self.baseline
        if trial.phase == "control" and base and base.objective and trial.objective:
            self.level = trial.objective
            console.print(
                f"control {trial.number:>2}  {self.objective}={trial.objective:.6g}  "
                f"[dim](the default again: the host runs at {trial.objective / base.objective:.3f}"
                "× the baseline's level; later trials are read against it)[/]"
            )
            return
        if base and base.objective and trial.objective is not None and not trial.is_baseline:
            # With drift controls, against the default's latest level: the corrected ratio.
            level = self.level or base.objective
            delta = f"  ({_change(trial.objective, level, self.direction)}"
            delta += ", drift-corrected)" if self.level else ")"
        action = _action(trial)
        took = f" {trial.timings[f'{action}_s']:.1f}s" if f"{action}_s" in trial.timings else ""
        console.print(
            f"trial {trial.number:>3}  ok  {self.objective}={trial.objective:.6g}{_kind(trial)}"
            f"{delta}  [dim]{action}{took}  measure {trial.timings.get('measure_s', 0):.1f}s[/]"
        )
        for name, problem in trial.not_applied.items():
            console.print(f"             [yellow]not applied:[/] {name}: {problem}")

    def _verify_line(self, trial: Trial) -> None:
        """A verification run, with its ratio to the same round's default when that ran."""
        head = f"verify {trial.round:>2}  {trial.arm:<10}"
        if not trial.ok or trial.objective is None:
            console.print(f"{head}  [red]FAILED[/]  {trial.error}")
            return
        note = ""
        base = self.round_default.get(int(trial.round or 0))
        twin = trial.metrics.get(REFERENCE_METRIC)
        if twin:
            base = twin
        if trial.arm == "default":
            self.round_default[int(trial.round or 0)] = trial.objective
        elif base:
            ratio = (
                trial.objective / base if self.direction == "maximize" else base / trial.objective
            )
            beside = "the default beside it, on a twin" if twin else "this round's default"
            note = f"  ({ratio:.3f}× {beside})"
        console.print(f"{head}  {self.objective}={trial.objective:.6g}{note}")


def _found(trial: Trial, defaults: Config) -> Config:
    """The baseline's values that are not the spec's defaults: the target's own."""
    return {k: v for k, v in trial.config.items() if k in defaults and defaults[k] != v}


def _change(value: float, baseline: float, direction: str) -> str:
    """The metric's change from the baseline, and whether that is better or worse."""
    pct = (value - baseline) / abs(baseline) * 100
    better = pct > 0 if direction == "maximize" else pct < 0
    return f"{pct:+.1f}% vs baseline, {'better' if better else 'worse'}"


def _kind(trial: Trial) -> str:
    """What sort of run it was, when not a full-length first run of a new config."""
    notes = [
        *(["repeat"] if trial.repeat else []),
        *([f"fidelity {trial.fidelity:.2g}"] if not trial.full else []),
    ]
    return f" ({', '.join(notes)})" if notes else ""


def _action(trial: Trial) -> str:
    """How the trial's config took effect: restart, reload, or online (nothing to do)."""
    for action in ("restart", "reload"):
        if f"{action}_s" in trial.timings:
            return action
    return "online"


class _Interrupted(KeyboardInterrupt):
    pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted()


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
        recorded_exp = _recorded(experiment, store) if server is None else None
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
        knobs = _top_knobs(knobs or "", from_experiment, spec, store, allow_unsafe)
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
            "time_budget_s": time_budget,
            "warm_start": warm_start,
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
        if recorded is not None:
            optimizer = optimizer or recorded.optimizer
            seed = recorded.seed if seed is None else seed
            duration = recorded.settings.get("duration_s") if duration is None else duration
            if knobs is None:
                knobs = ",".join(recorded.settings.get("knobs", []))
            if warm_start is None:
                warm_start = recorded.settings.get("warm_start")
            kept = recorded.settings.get("verify") or {}
            precision = kept.get("precision") if precision is None else precision
            max_rounds = kept.get("max_rounds") if max_rounds is None else max_rounds
            controls = recorded.settings.get("controls") if controls is None else controls
            if repeats is None and recorded.settings.get("repeats") is not None:
                repeats = min(recorded.repeats, max(0, trials - 2))
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
            machine={"memory_bytes": machine.memory_bytes, "cpus": machine.cpus},
            budget=trials,
            repeats=repeats,
            time_budget_s=time_budget,
            warm_start=warm_start,
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
        if summary is None:
            summary = summarize(st, exp)
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


def _recorded(name: str | None, store: str | None) -> Experiment | None:
    """The stored experiment a resume by name continues, if there is one."""
    if name is None:
        return None
    with open_store(store) as st:
        return st.experiment(name)


def interrupt_once(signum: int, frame: FrameType | None) -> None:
    """SIGINT: a KeyboardInterrupt the first time; every later one is ignored, so a
    second Ctrl-C cannot break off the cleanup the first one started."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def default_name(system: str, workload: str) -> str:
    """``postgres-pgbench-tpcb-20261202-161500``: a valid name ('+' of a composite is '_')."""
    stamp = f"{datetime.datetime.now():%Y%m%d-%H%M%S}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{system}-{workload}-{stamp}")[:128]


def _top_knobs(
    knobs: str, source: str | None, spec: Spec, store: str | None, allow_unsafe: bool
) -> str:
    """``top:K`` as a comma list: the K best-ranked knobs of ``source`` that this spec
    has and may tune (unsafe ones only with --allow-unsafe)."""
    from autotune.analysis import top_knobs

    text = knobs.removeprefix("top:")
    if not text.isdigit() or int(text) < 1:
        fail(f"--knobs {knobs}: K must be a whole number of at least 1")
    if source is None:
        fail(f"--knobs {knobs} needs --from EXPERIMENT: the experiment whose analysis ranks them")
    assert source is not None
    with open_store(store) as st:
        ranked = top_knobs(st, source, len(spec.knobs) + 1000)
    eligible = [
        n
        for n in ranked
        if n in spec.knobs
        and spec.knobs[n].tunable
        and (allow_unsafe or spec.knobs[n].safety != "unsafe")
    ]
    picked = eligible[: int(text)]
    if not picked:
        fail(f"--knobs {knobs}: none of {source}'s ranked knobs can be tuned with {spec.path}")
    console.print(f"note: --knobs {knobs} --from {source}: {', '.join(picked)}")
    return ",".join(picked)


def _tune_remote(
    server: str, admin_token: str | None, spec: Spec, request: dict[str, Any], poll_s: float = 1.0
) -> None:
    """Submit the experiment to a server, then follow it until its budget is spent."""
    if not admin_token:
        fail("--server needs the admin token: set AUTOTUNE_ADMIN_TOKEN or pass --admin-token")
    assert admin_token is not None
    name = str(request["name"])
    try:
        client = AdminClient(server, admin_token)
    except ServiceError as exc:
        fail(str(exc))
    # Ctrl-C must work even when a parent shell started us with SIGINT ignored
    # (as `cmd &` does): cleanup depends on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        created = client.create_experiment(request)
        exp = created.experiment
        for note in created.notes:
            console.print(f"note: {note}")
        console.print(
            f"{'resuming' if created.resumed else 'submitted'} experiment [bold]{name}[/] on "
            f"{server}: {exp.system} × {exp.workload}, {len(exp.knobs)} knobs, optimizer "
            f"{exp.optimizer}, {exp.budget} trials, up to {exp.parallelism} at a time"
            + (f" ({exp.finished} recorded)" if created.resumed else "")
        )
        _follow(client, exp, poll_s)
        best = client.best(name)
        done = [t.to_trial() for t in client.trials(name) if t.status in ("ok", "failed")]
    except (KeyboardInterrupt, _Interrupted):
        console.print(
            f"[yellow]stopped following[/]: {name} goes on on the server; "
            f"follow it again with: autotune tune … --server {server} --experiment {name}"
        )
        raise typer.Exit(130) from None
    except ServiceError as exc:
        fail(str(exc))
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
        client.close()
    summary = summary_of(
        name, best.objective_metric, best.direction, done, f"the server's, at {server}"
    )
    _print_summary(spec, summary, 0.0, 0.0)


def _follow(client: AdminClient, exp: ExperimentOut, poll_s: float) -> None:
    """A bar of finished trials and one line per trial, until the budget is spent; a
    note whenever fewer trials can run at once than were asked for, and why."""
    name, budget = exp.name, exp.budget
    metric, direction = exp.objective_metric, exp.direction
    reported: set[int] = set()
    baseline: float | None = None
    said: str | None = None
    checked = -math.inf
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("waiting for agents", total=budget)
        while True:
            if exp.parallelism > 1 and time.monotonic() - checked >= CAPACITY_EVERY_S:
                checked = time.monotonic()
                agents = [a.to_info() for a in client.agents()]
                room = capacity(exp.parallelism, exp.allow_colocated, agents, now())
                if room.note is not None and room.note != said:
                    progress.console.print(f"note: {room.note}", markup=False)
                said = room.note
            trials = client.trials(name)
            finished = [t for t in trials if t.status in ("ok", "failed")]
            for t in finished:
                if t.id in reported:
                    continue
                reported.add(t.id)
                if t.baseline and t.status == "ok":
                    baseline = t.objective
                progress.console.print(_remote_line(t, metric, direction, baseline))
            running = sum(t.status == "leased" for t in trials)
            searched = sum(t.phase == "search" for t in finished)
            verifying = searched >= budget or any(t.phase == "verify" for t in trials)
            progress.update(
                task,
                completed=min(searched, budget),
                description=(
                    "verifying"
                    if verifying
                    else f"{running} running"
                    if running
                    else "waiting for agents"
                ),
            )
            if searched >= budget:
                # The search is spent; the experiment may still verify its claim.
                state = client.experiment(name)
                if state is None or state.status == "done" or not state.verify:
                    return
            time.sleep(poll_s)


def _remote_line(t: TrialOut, metric: str, direction: str, baseline: float | None) -> str:
    by = f"  [dim]{t.agent}, attempt {t.attempts}[/]"
    if t.phase == "verify":
        value = f"{metric}={t.objective:.6g}" if t.status == "ok" else f"[red]FAILED[/] {t.error}"
        return f"verify {t.round:>2}  {t.arm:<10}  {value}{by}"
    if t.status != "ok":
        return f"trial {t.number:>3}  [red]FAILED[/]  {t.error}{by}"
    delta = ""
    if baseline and t.objective is not None and not t.baseline:
        delta = f"  ({_change(t.objective, baseline, direction)})"
    label = (" (baseline)" if t.baseline else "") + _kind(t.to_trial())
    return f"trial {t.number:>3}  ok  {metric}={t.objective:.6g}{label}{delta}{by}"


def _print_summary(
    spec: Spec, s: Summary, wall_s: float, setup_s: float, session_measure_s: float = 0.0
) -> None:
    console.rule(f"summary: {s.experiment}")
    unit = f"{s.objective_metric} ({s.direction})"
    rb = s.robust
    v = s.verification
    if rb is not None and rb.baseline is not None:
        base = rb.baseline
        runs = f"median of {base.n} runs, " if base.n > 1 else ""
        found = _found(base.first, spec.defaults())
        what = f": as found, {len(found)} knob(s) off the defaults" if found else ""
        console.print(
            f"baseline      {base.median:.6g} {unit}  ({runs}trial {base.first.number}{what})"
        )
    if v is not None:
        console.print(
            verification_table(
                v,
                f"verification: {v.rounds} paired rounds, {s.objective_metric}"
                + (f"; stopped: {v.stopped}" if v.stopped else ""),
            )
        )
        console.print(f"best          {v.verdict}")
    elif rb is not None:
        line = describe(rb, s.objective_metric)
        console.print(f"best          {line}; not verified")
        pct = s.improvement_pct
        if pct is not None and not rb.best.is_baseline:
            versus = (
                "the baseline's median" if rb.baseline and rb.baseline.n > 1 else "the baseline"
            )
            runs = ", ".join(f"{v:.6g}" for v in rb.best.values)
            console.print(
                f"              {abs(pct):.1f}% {'better' if pct >= 0 else 'worse'} than "
                f"{versus}  [dim](runs: {runs})[/]"
            )
        if not rb.best.is_baseline:
            console.print(
                "              [dim]not verified in paired rounds (sessions from 10 trials "
                "do that); run autotune verify before trusting a gain[/]"
            )
        shaky = unstable_line(rb)
        if shaky is not None:
            shaky = shaky.replace("unstable: ", "unstable      ", 1)
            console.print(f"[yellow]{shaky}[/]  [dim](cv > 0.1 or range > 25% of the median)[/]")
    extra = [f"{s.repeats} repeats"] if s.repeats else []
    extra += [f"{s.short} short"] if s.short else []
    extra += [f"then {s.verify_runs} verification runs"] if s.verify_runs else []
    console.print(
        f"trials        {s.trials} done, {s.failed} failed" + "".join(f", {e}" for e in extra)
    )
    if s.measure_share is not None:
        line = f"measuring     {s.measure_share:.0%} of trial wall time"
        if wall_s:
            # This session only: on a resume, earlier trials were measured in another one.
            line += (
                f" (this session: {session_measure_s / wall_s:.0%} of {wall_s:.0f}s,"
                f" incl. {setup_s:.0f}s setup and optimiser time)"
            )
        console.print(line)
    console.print(f"store         {s.store_url}")
    if s.best is None:
        return
    where = " (postgresql.conf)" if spec.system == "postgres" else ""
    if v is not None and not v.verified:
        console.print(
            f"[yellow]no verified gain: keep {v.reference_name}.[/] The best candidate{where}, "
            "not recommended:"
        )
    else:
        console.print(f"best config{where}:")
    console.print(render(spec, s.best.config, "conf"), markup=False)
    changed = formatted(spec, s.best.config)
    console.print(
        f"[dim]{len(changed)} knobs; also: autotune best {s.experiment} --format "
        f"{'sql|json' if spec.system == 'postgres' else 'json'}[/]"
    )

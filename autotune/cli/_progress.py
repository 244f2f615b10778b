"""What a session prints: a progress bar per trial, a line per finished trial, and the
summary at the end."""

from __future__ import annotations

import threading
import time

from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from autotune.agent import AgentRunner, ExperimentInfo, Lease, RunnerEvents
from autotune.cli._common import (
    console,
)
from autotune.cli._format import formatted, render, verification_table
from autotune.cli._signals import raise_if_lost
from autotune.spec import Config, Spec
from autotune.store import Trial
from autotune.tuner import (
    PGTUNE,
    REFERENCE_METRIC,
    Summary,
    describe,
    pgtune_db_type,
    unstable_line,
)


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
        raise_if_lost()
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
            # Only a PostgreSQL session has a pgtune arm (tuner.pgtune_for).
            pgtune = (
                f" and pgtune ({pgtune_db_type(lease.experiment.workload_content)}, as for "
                "this workload)"
                if lease.experiment.system == "postgres"
                else ""
            )
            console.print(
                f"search done: verifying the best configs{pgtune} against the default "
                f"in paired rounds, {how}"
            )
        self.t0 = time.monotonic()
        expected = self.expected_s * min(1.0, lease.fidelity)
        self.task = self.progress.add_task(self.label, total=expected)

    def phase(self, name: str) -> None:
        raise_if_lost()
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
    if v is not None and v.pgtune_ahead is not None and PGTUNE in v.configs:
        console.print("pgtune's config, verified ahead of it:")
        console.print(render(spec, v.configs[PGTUNE], "conf"), markup=False)

"""Setting up a session: which knobs to tune, and creating or resuming the experiment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autotune.optimizers import OPTIMIZERS
from autotune.spec import Spec
from autotune.store import Experiment, Store, now
from autotune.tuner._safety import SAFETY_MARGIN
from autotune.tuner._tuner import TuningError
from autotune.tuner._verify import MIN_ROUNDS, MIN_TRIALS, VerifyPolicy
from autotune.workloads import WorkloadDef

# One place for the default, so it becomes "auto" the day that optimiser is registered.
DEFAULT_OPTIMIZER = "auto" if "auto" in OPTIMIZERS else "gp"


def default_repeats(budget: int) -> int:
    """Re-measurements when none are asked for: none. The claim comes from the paired
    verification after the search, which compares configs far more precisely than
    repeats interleaved with the search can (``_verify``); ``--repeats`` is still there
    to race the top configs inside the search's own budget."""
    return 0


def verify_option(
    budget: int, verify: bool | None, precision: float, max_rounds: int, twin: bool = False
) -> VerifyPolicy | None:
    """The verification a session ends with: asked for, refused, or by default from
    MIN_TRIALS trials up (a shorter session has too few configs worth verifying).
    ``twin``: its runs are measured beside a twin of the system (a managed sandbox).
    ValueError names a bad precision or round cap."""
    wanted = budget >= MIN_TRIALS if verify is None else verify
    if not wanted:
        return None
    return VerifyPolicy(
        precision=precision,
        min_rounds=min(MIN_ROUNDS, max_rounds),
        max_rounds=max_rounds,
        twin=twin,
    )


def check_repeats(budget: int, repeats: int) -> None:
    """Repeats are the budget's last trials: the baseline and one searched config come first."""
    if repeats < 0:
        raise TuningError(f"--repeats must be 0 or more, not {repeats}")
    if repeats and repeats > budget - 2:
        raise TuningError(
            f"--repeats {repeats} leaves no trial to search in a budget of {budget}; "
            f"give at most {max(0, budget - 2)} or raise --trials"
        )


@dataclass
class KnobSelection:
    names: list[str]
    notes: list[str] = field(default_factory=list)


def select_knobs(
    spec: Spec, requested: str | None, *, allow_unsafe: bool, restartable: bool
) -> KnobSelection:
    """The knobs to tune: all tunable ones, a comma list, or ``group:NAME`` from the spec.

    Unsafe knobs are left out unless ``allow_unsafe``; naming one explicitly
    without it is an error, not a silent drop. Restart-class knobs are left
    out, with a note, when the target cannot be restarted.
    """
    notes: list[str] = []
    explicit = requested is not None
    if requested is None:
        names = [name for name, knob in spec.knobs.items() if knob.tunable]
    elif requested.startswith("group:"):
        group = requested.removeprefix("group:")
        if group not in spec.groups:
            known = ", ".join(sorted(spec.groups)) or "none"
            raise TuningError(f"--knobs: spec {spec.path} has no group {group!r} (groups: {known})")
        names = [n for n in spec.groups[group] if spec.knobs[n].tunable]
        fixed = [n for n in spec.groups[group] if not spec.knobs[n].tunable]
        if fixed:
            notes.append(f"left out knobs marked tunable: false: {', '.join(fixed)}")
    else:
        names = [n.strip() for n in requested.split(",") if n.strip()]
        unknown = [n for n in names if n not in spec.knobs]
        if unknown:
            raise TuningError(f"--knobs: unknown knob(s) {', '.join(unknown)} in {spec.path}")
        fixed = [n for n in names if not spec.knobs[n].tunable]
        if fixed:
            raise TuningError(f"--knobs: {', '.join(fixed)} marked tunable: false in {spec.path}")
    unsafe = [n for n in names if spec.knobs[n].safety == "unsafe"]
    if unsafe and not allow_unsafe:
        if explicit and not requested.startswith("group:"):  # type: ignore[union-attr]
            raise TuningError(
                f"--knobs: {', '.join(unsafe)}: safety: unsafe in {spec.path} (they risk "
                "data or the system's stability); pass --allow-unsafe to tune them"
            )
        names = [n for n in names if n not in unsafe]
        notes.append(f"left out unsafe knobs (use --allow-unsafe): {', '.join(unsafe)}")
    restart = [n for n in names if spec.knobs[n].apply == "restart"]
    if restart and not restartable:
        names = [n for n in names if n not in restart]
        notes.append(
            "left out restart-class knobs (give --restart-command and --data-dir to tune "
            "them, so that a change can be undone while the server is down): " + ", ".join(restart)
        )
    if not names:
        raise TuningError("no knobs left to tune")
    return KnobSelection(names, notes)


@dataclass
class SessionOptions:
    name: str
    optimizer: str
    seed: int
    duration_s: float | None
    knobs: list[str]
    allow_unsafe: bool
    target: str
    machine: dict[str, int]
    budget: int = 10
    parallelism: int = 1
    lease_s: float | None = None
    repeats: int | None = None  # None: default_repeats(budget)
    time_budget_s: float | None = None  # wall seconds before no new trial is proposed
    # Start the time budget's clock now. A service resume that only follows an
    # experiment (time budget left out, so taken from the record) keeps the old clock.
    restart_clock: bool = True
    warm_start: str = "none"  # none | auto | a past experiment's name (see _warm)
    start_with: str = "none"  # none | pgtune: tried first after the baseline (see _start)
    verify: VerifyPolicy | None = None  # the paired verification after the search; None: none
    restartable: bool = True  # the target can be restarted (pgtune's arm keeps its restart knobs)
    controls: int = 0  # a drift control (the default again) every this many search trials; 0: none
    safety_margin: float = SAFETY_MARGIN  # no config predicted below (1 − m) × baseline; 1: none
    allow_colocated: bool = False  # agents on one host may run its trials side by side

    @property
    def resolved_repeats(self) -> int:
        return default_repeats(self.budget) if self.repeats is None else self.repeats

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "knobs": self.knobs,
            "duration_s": self.duration_s,
            "allow_unsafe": self.allow_unsafe,
            "target": self.target,
            "machine": self.machine,
            "budget": self.budget,
            "parallelism": self.parallelism,
            "repeats": self.resolved_repeats,
            "time_budget_s": self.time_budget_s,
            "warm_start": self.warm_start,
            "start_with": self.start_with,
            "restartable": self.restartable,
            **self.run_settings(None, clock=False),
        }
        if self.lease_s is not None:
            out["lease_s"] = self.lease_s
        return out

    def run_settings(self, recorded: dict[str, Any] | None, clock: bool = True) -> dict[str, Any]:
        """What a (re)opened experiment runs with: repeats, the verification and the time
        budget's clock (with ``clock``)."""
        out: dict[str, Any] = {
            "repeats": self.resolved_repeats,
            "verify": None if self.verify is None else self.verify.to_json(),
            "controls": self.controls,
            "safety_margin": self.safety_margin,
            "allow_colocated": self.allow_colocated,
        }
        if clock:
            started = None
            if self.time_budget_s is not None:
                kept = None if recorded is None or self.restart_clock else recorded
                started = (kept or {}).get("time_budget_from") or now().isoformat()
            out.update(time_budget_s=self.time_budget_s, time_budget_from=started)
        return out


def recorded_defaults(existing: Experiment, budget: int) -> dict[str, Any]:
    """What a resume takes from the record for each option not given again, by the
    option's name in ``SessionOptions`` and the API: one rule for ``autotune tune``
    and the service. The search space's options (knobs, unsafe knobs, duration,
    optimiser, seed) must then match; repeats never take more than ``budget``
    leaves room for; the verification keeps how it verifies, not whether."""
    settings = existing.settings
    out: dict[str, Any] = {
        "optimizer": existing.optimizer,
        "seed": existing.seed,
        "duration_s": settings.get("duration_s"),
        "knobs": settings.get("knobs"),
        "allow_unsafe": settings.get("allow_unsafe", False),
        "warm_start": settings.get("warm_start"),
        # Sessions from before --start-with started from nothing: keep them so.
        "start_with": settings.get("start_with") or "none",
        "controls": settings.get("controls"),
        "safety_margin": settings.get("safety_margin"),
        "parallelism": settings.get("parallelism", 1),
        "lease_s": settings.get("lease_s"),
        "machine": settings.get("machine"),
        "time_budget_s": settings.get("time_budget_s"),
        "allow_colocated": settings.get("allow_colocated"),
    }
    verify = settings.get("verify")
    if isinstance(verify, dict):
        out.update(precision=verify.get("precision"), max_rounds=verify.get("max_rounds"))
    if settings.get("repeats") is not None:
        out["repeats"] = min(int(settings["repeats"] or 0), max(0, budget - 2))
    return {k: v for k, v in out.items() if v is not None}


def open_experiment(
    store: Store, spec: Spec, workload: WorkloadDef, options: SessionOptions
) -> tuple[Experiment, bool]:
    """Create the experiment, or resume it if nothing that defines it has changed.

    Returns (experiment, resumed).
    """
    check_repeats(options.budget, options.resolved_repeats)
    existing = store.experiment(options.name)
    if existing is None:
        experiment = store.create_experiment(
            name=options.name,
            system=spec.system,
            spec_content=spec.source,
            spec_hash=spec.content_hash,
            spec_path=spec.path,
            workload_name=workload.name,
            workload_content=workload.source,
            workload_hash=workload.content_hash,
            workload_path=str(workload.path),
            objective_metric=workload.objective_metric,
            direction=workload.direction,
            optimizer=options.optimizer,
            seed=options.seed,
            settings={**options.settings(), **options.run_settings(None)},
            workload_files=workload.files,
        )
        return experiment, False
    changed = []
    if existing.spec_hash != spec.content_hash:
        changed.append(f"the knob spec ({spec.path}) differs from the recorded one")
    if existing.workload_hash != workload.content_hash:
        changed.append(f"the workload ({workload.path}) differs from the recorded one")
    recorded = existing.settings
    for key, label in (("knobs", "--knobs"), ("duration_s", "--duration")):
        if recorded.get(key) != options.settings()[key]:
            changed.append(
                f"{label} is {options.settings()[key]!r}, recorded {recorded.get(key)!r}"
            )
    was_warm = recorded.get("warm_start") or "none"
    if was_warm != options.warm_start:
        changed.append(f"--warm-start is {options.warm_start!r}, recorded {was_warm!r}")
    was_start = recorded.get("start_with") or "none"
    if was_start != options.start_with:
        changed.append(f"--start-with is {options.start_with!r}, recorded {was_start!r}")
    if existing.optimizer != options.optimizer:
        changed.append(f"--optimizer is {options.optimizer!r}, recorded {existing.optimizer!r}")
    if existing.seed != options.seed:
        changed.append(f"--seed is {options.seed}, recorded {existing.seed}")
    if changed:
        raise TuningError(
            f"cannot resume experiment {options.name!r}: "
            + "; ".join(changed)
            + ". Start a new one with --experiment NEW_NAME."
        )
    # The budget may grow on a resume; the experiment runs again until it is spent.
    # Repeats and the time budget are how it runs, not what it is: they may change too.
    updated = store.update_experiment(
        existing,
        status="running",
        budget=options.budget,
        settings=options.run_settings(existing.settings),
    )
    return updated, True

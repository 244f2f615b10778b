"""The agent: apply a config, run the workload, collect, and report one trial.

It sits beside the tuned system. A config that breaks the system is rolled
back and reported as a failed trial with the server's log; the session goes
on. ``stop`` always leaves the system as it was found.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autotune.domain import now
from autotune.spec import Config
from autotune.systems import ConfigFailed, System, SystemError_, metric_deltas
from autotune.workloads import Workload, WorkloadError

PhaseCallback = Callable[[str], None]
log = logging.getLogger("autotune.agent")
SLICE_S = 3  # seconds a paired run measures on one system before the other's turn


@dataclass
class TrialOutcome:
    """What a trial produced, before the tuner turns it into a stored Trial."""

    status: str  # ok | failed
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    status_history: list[tuple[str, ...]] = field(default_factory=list)
    not_applied: dict[str, str] = field(default_factory=dict)
    action: str = "online"
    error: str | None = None
    log_excerpt: str | None = None
    started_at: Any = None
    finished_at: Any = None
    # The config that ran, when it is not the leased one: a baseline runs the target's
    # configuration as found (``Agent.as_found``), which the tuner then records.
    config: Config | None = None


class _InternalMetrics:
    """The system's internal metrics over one trial's measured phase.

    The workload says when measuring starts ("measure") and ends ("collect");
    snapshots taken there see only the measured load, not warm-up or loading.
    A workload that never says "measure" is bracketed over its whole run. A
    failing snapshot costs the trial its internal metrics, never the trial.
    """

    def __init__(self, system: System) -> None:
        self.system = system
        self.run_start: dict[str, float] | None = None
        self.before: dict[str, float] | None = None
        self.after: dict[str, float] | None = None
        self.measure_seen = False
        self.failed = False

    def _take(self) -> dict[str, float] | None:
        if self.failed:
            return None
        try:
            return self.system.metrics_snapshot()
        except Exception as exc:  # any failure: the trial goes on without them
            self.failed = True
            log.warning("internal metrics left out of this trial: snapshot failed: %s", exc)
            return None

    def run_started(self) -> None:
        """The fallback bracket's start, for a workload that never says "measure"."""
        self.run_start = self._take()

    def measure_started(self) -> None:
        if not self.measure_seen:
            self.measure_seen = True
            self.before = self._take()

    def measure_ended(self) -> None:
        if self.before is not None and self.after is None:
            self.after = self._take()

    def deltas(self) -> dict[str, float]:
        """Counter deltas and end-of-phase gauges; call when the workload has returned."""
        before = self.before if self.before is not None else self.run_start
        if before is None or self.failed:
            return {}
        after = self.after if self.after is not None else self._take()
        if after is None:
            return {}
        return metric_deltas(before, after, self.system.gauges())


class Agent:
    """Drives one system with one workload."""

    def __init__(
        self,
        system: System,
        workload: Workload,
        duration_s: float | None,
        *,
        reset: bool = True,
        settle: bool = True,
    ) -> None:
        self.system = system
        self.workload = workload
        self.duration_s = duration_s
        # Off only to measure what they are worth (experiments/bench_noise.py).
        self.reset = reset
        self.settle = settle
        self.setup_s = 0.0
        self.found: Config | None = None  # the target's configuration before any change
        self._started = False
        self._twin: System | None = None  # started on the first paired run
        # Once the workload has said "measure", later trials skip the whole-run fallback.
        self._workload_says_measure = False

    def start(self, phase: PhaseCallback = lambda _: None) -> None:
        """Bring the system up, load the data once, and remember it as good."""
        t0 = time.monotonic()
        phase("starting system")
        self._started = True
        self.system.start()
        self.found = self.system.current()
        self._load(self.system, phase, "")
        self.system.mark_good()
        self.setup_s = time.monotonic() - t0

    def as_found(self, config: Config) -> Config:
        """``config``'s knobs at the values the target ran before the session (those it
        could read; the others as given): the baseline of an existing server or a host
        is what runs today, not the spec's defaults."""
        if not self.found:
            return dict(config)
        return {name: self.found.get(name, value) for name, value in config.items()}

    def _load(self, system: System, phase: PhaseCallback, whose: str) -> None:
        """The workload's data into ``system``: from the dataset cache when the workload
        keeps its data (``cache: true``) and a session kept it before, else loaded, and
        then kept for the next session."""
        key = self.workload.definition.dataset_key()
        if key is not None:
            t0 = time.monotonic()
            if system.restore_dataset(key):
                took = time.monotonic() - t0
                phase(f"{whose}data copied from the dataset cache in {took:.1f}s, no load ({key})")
                return
        phase(f"loading {whose}data")
        self.workload.prepare(system)
        if key is not None:
            phase(f"keeping the loaded data in the dataset cache ({key})")
            system.save_dataset(key)

    def run_trial(
        self,
        config: Config,
        phase: PhaseCallback = lambda _: None,
        duration_s: float | None = None,
    ) -> TrialOutcome:
        """Apply ``config``, run the workload and collect; ``duration_s`` overrides the
        session's measured length for this trial (a short, low-fidelity run)."""
        outcome = TrialOutcome(status="running", started_at=now())
        history = outcome.status_history
        internal = _InternalMetrics(self.system)

        def enter(name: str) -> None:
            # Snapshots hug the measured phase: the last thing before it, the first after.
            if name == "collect":
                internal.measure_ended()
            history.append((name, now().isoformat()))
            phase(name)
            if name == "measure":
                internal.measure_started()

        t_start = time.monotonic()
        enter("apply")
        try:
            report = self.system.apply(config)
        except ConfigFailed as exc:
            return self._failed(outcome, str(exc), exc.log_excerpt, t_start)
        outcome.action = report.action
        outcome.not_applied = report.not_applied
        outcome.timings["apply_s"] = report.apply_s
        if report.action != "online":
            outcome.timings[f"{report.action}_s"] = report.restart_s
        try:
            # Every trial starts from the loaded data, settled and warm: the baseline's
            # first run as much as any other.
            if self.reset:
                enter("reset")
                t0 = time.monotonic()
                if self.workload.reset(self.system):
                    outcome.timings["reset_s"] = time.monotonic() - t0
            if self.settle:
                enter("settle")
                t0 = time.monotonic()
                settled = self.workload.settle(self.system)
                outcome.timings["settle_s"] = time.monotonic() - t0
                outcome.timings.update({f"settle.{k}": v for k, v in settled.items()})
            length = self.duration_s if duration_s is None else duration_s
            if not self._workload_says_measure:
                internal.run_started()
            result = self.workload.run(self.system, length, enter)
        except WorkloadError as exc:
            excerpt = "\n".join(x for x in (exc.log_excerpt, self.system.log_excerpt()) if x)
            if not self.system.healthy():
                self.system.rollback()
                message = f"{exc}; the system stopped answering and was rolled back"
            else:
                message = str(exc)
            return self._failed(outcome, message, excerpt, t_start)
        # The workload's own metrics win a name clash (names are prefixed, so none is expected).
        outcome.metrics = {**internal.deltas(), **result.metrics}
        self._workload_says_measure = internal.measure_seen
        outcome.timings.update(
            warmup_s=result.warmup_s, measure_s=result.measure_s, collect_s=result.collect_s
        )
        self.system.mark_good()
        outcome.timings["total_s"] = time.monotonic() - t_start
        outcome.status = "ok"
        history.append(("ok", now().isoformat()))
        outcome.finished_at = now()
        return outcome

    def _failed(
        self, outcome: TrialOutcome, error: str, excerpt: str, t_start: float
    ) -> TrialOutcome:
        outcome.status = "failed"
        outcome.error = error
        outcome.log_excerpt = excerpt or None
        outcome.timings["total_s"] = time.monotonic() - t_start
        outcome.status_history.append(("failed", now().isoformat()))
        outcome.finished_at = now()
        return outcome

    def stop(self, keep: Config | None = None) -> None:
        """Restore the original configuration (or leave ``keep`` applied), then let go.

        A twin is stopped even when this agent did not start the system itself (agents
        sharing one system each start their own twin)."""
        twin, self._twin = self._twin, None
        try:
            if self._started:
                self._started = False
                try:
                    self.system.restore(keep)
                finally:
                    self.system.stop()
        finally:
            if twin is not None:
                twin.stop()

    # -- paired runs beside a twin ------------------------------------------------------
    def can_pair(self) -> bool:
        """Whether this agent can measure a config beside a twin of its system."""
        return self._twin is not None or self.system.twin() is not None

    def _started_twin(self, phase: PhaseCallback) -> System:
        """The twin, started and loaded with the same data on first use."""
        if self._twin is None:
            twin = self.system.twin()
            if twin is None:
                raise SystemError_("this system has no twin to measure beside")
            self._twin = twin
            phase("starting a twin")
            twin.start()
            self._load(twin, phase, "the twin's ")
            twin.mark_good()
        return self._twin

    def run_pair(
        self,
        config: Config,
        reference: Config,
        phase: PhaseCallback = lambda _: None,
        duration_s: float | None = None,
        swap: bool = False,
    ) -> TrialOutcome:
        """Measure ``config`` beside a twin running ``reference``, in alternating slices.

        On this host throughput wanders by 10% from one 15 s run to the next, which no
        pairing of whole runs cancels; it moves much less within a few seconds. So the
        measured time is cut into slices of SLICE_S, run on the two systems in turn
        (A B, B A, A B, …, so drift within the trial falls on both alike), each system
        warmed once, both reset and settled first. ``swap`` puts ``config`` on the twin
        instead, so that over rounds any difference between the two instances cancels.
        The outcome's metrics are the slices' means for ``config``, with the
        reference's objective as ``reference.objective``.
        """
        outcome = TrialOutcome(status="running", started_at=now())
        t_start = time.monotonic()

        def enter(name: str) -> None:
            outcome.status_history.append((name, now().isoformat()))
            phase(name)

        try:
            twin = self._started_twin(phase)
        except SystemError_ as exc:
            return self._failed(outcome, f"the twin did not start: {exc}", exc.log_excerpt, t_start)
        mine, theirs = (twin, self.system) if swap else (self.system, twin)
        enter("apply")
        try:
            report = mine.apply(config)
            theirs.apply(reference)
        except ConfigFailed as exc:
            return self._failed(outcome, str(exc), exc.log_excerpt, t_start)
        outcome.action = report.action
        outcome.not_applied = report.not_applied
        outcome.timings["apply_s"] = time.monotonic() - t_start
        metric = self.workload.definition.objective_metric
        length = duration_s or self.duration_s or self.workload.definition.duration_s or 30.0
        per = float(SLICE_S if length >= 3 * SLICE_S else max(1, round(length / 2)))
        slices = max(1, round(length / per))
        ran: dict[int, list[dict[str, float]]] = {0: [], 1: []}
        try:
            for system in (mine, theirs):  # both start from the same state, settled
                if self.reset:
                    enter("reset")
                    t0 = time.monotonic()
                    self.workload.reset(system)
                    outcome.timings["reset_s"] = (
                        outcome.timings.get("reset_s", 0.0) + time.monotonic() - t0
                    )
                if self.settle:
                    enter("settle")
                    t0 = time.monotonic()
                    self.workload.settle(system)
                    outcome.timings["settle_s"] = (
                        outcome.timings.get("settle_s", 0.0) + time.monotonic() - t0
                    )
            enter("measure")
            t0 = time.monotonic()
            for i in range(slices):
                for which in (0, 1) if i % 2 == 0 else (1, 0):
                    system = mine if which == 0 else theirs
                    result = self.workload.run(system, per, lambda _: None, warmup=i == 0)
                    ran[which].append(result.metrics)
            outcome.timings["measure_s"] = time.monotonic() - t0
        except WorkloadError as exc:
            excerpt = "\n".join(x for x in (exc.log_excerpt, mine.log_excerpt()) if x)
            for system in (mine, theirs):
                if not system.healthy():
                    system.rollback()
            return self._failed(outcome, str(exc), excerpt, t_start)
        enter("collect")
        names = set.intersection(*(set(m) for m in ran[0]))
        outcome.metrics = {n: statistics.fmean(m[n] for m in ran[0]) for n in sorted(names)}
        refs = [m[metric] for m in ran[1] if metric in m]
        if refs and metric in outcome.metrics:
            outcome.metrics["reference.objective"] = statistics.fmean(refs)
        outcome.metrics["slices"] = float(slices)
        outcome.metrics["twin_runs_config"] = float(swap)
        for system in (mine, theirs):
            system.mark_good()
        outcome.timings["total_s"] = time.monotonic() - t_start
        outcome.status = "ok"
        outcome.status_history.append(("ok", now().isoformat()))
        outcome.finished_at = now()
        return outcome

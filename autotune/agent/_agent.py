"""The agent: apply a config, run the workload, collect, and report one trial.

It sits beside the tuned system. A config that breaks the system is rolled
back and reported as a failed trial with the server's log; the session goes
on. ``stop`` always leaves the system as it was found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autotune.spec import Config
from autotune.store import now
from autotune.systems import ConfigFailed, System
from autotune.systems._host import metric_deltas
from autotune.workloads import Workload, WorkloadError

PhaseCallback = Callable[[str], None]
log = logging.getLogger("autotune.agent")


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

    def __init__(self, system: System, workload: Workload, duration_s: float | None) -> None:
        self.system = system
        self.workload = workload
        self.duration_s = duration_s
        self.setup_s = 0.0
        self._started = False
        # Once the workload has said "measure", later trials skip the whole-run fallback.
        self._workload_says_measure = False

    def start(self, phase: PhaseCallback = lambda _: None) -> None:
        """Bring the system up, load the data once, and remember it as good."""
        t0 = time.monotonic()
        phase("starting system")
        self._started = True
        self.system.start()
        phase("loading data")
        self.workload.prepare(self.system)
        self.system.mark_good()
        self.setup_s = time.monotonic() - t0

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
        """Restore the original configuration (or leave ``keep`` applied), then let go."""
        if not self._started:
            return
        self._started = False
        try:
            self.system.restore(keep)
        finally:
            self.system.stop()

"""An in-process tuner client: ``autotune tune`` runs the same agent loop as remote agents."""

from __future__ import annotations

import contextlib

from autotune.agent import Lease, LeaseLost, TrialOutcome
from autotune.store import LeaseConflict, Trial
from autotune.tuner._scheduler import Scheduler


class LocalClient:
    """A TunerClient that calls a Scheduler directly, as agent ``name``."""

    def __init__(self, scheduler: Scheduler, name: str = "local", experiment: str | None = None):
        self.scheduler = scheduler
        self.name = name
        self.experiment = experiment

    def lease(self) -> Lease | None:
        return self.scheduler.lease(self.name, self.experiment)

    def heartbeat(self, lease: Lease) -> None:
        try:
            self.scheduler.heartbeat(self.name, lease.trial_id, lease.lease_id)
        except LeaseConflict as exc:
            raise LeaseLost(str(exc)) from None

    def report(self, lease: Lease, outcome: TrialOutcome) -> Trial:
        try:
            return self.scheduler.report(self.name, lease.trial_id, lease.lease_id, outcome)
        except LeaseConflict as exc:
            raise LeaseLost(str(exc)) from None

    def release(self, lease: Lease) -> None:
        with contextlib.suppress(LeaseConflict):  # already gone: nothing to give back
            self.scheduler.release(self.name, lease.trial_id, lease.lease_id)

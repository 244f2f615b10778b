"""The agent's view of the tuner: leases in, reports out.

One protocol, two transports: ``LocalClient`` (tuner/_local.py) calls the
scheduler in-process for ``autotune tune``; ``HttpClient`` (service/_client.py)
talks to ``autotune server``. The agent loop is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from autotune.agent._agent import TrialOutcome
from autotune.store import Trial


@dataclass(frozen=True)
class ExperimentInfo:
    """What an agent needs to run an experiment's trials, sent with every lease."""

    name: str
    system: str
    spec_content: str
    spec_path: str
    spec_hash: str
    workload_name: str
    workload_content: str
    workload_path: str
    workload_hash: str
    objective_metric: str
    direction: str
    duration_s: float | None
    knobs: list[str]
    machine: dict[str, int] | None = None
    workload_files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Lease:
    """A trial an agent holds until ``lease_s`` after its last heartbeat."""

    trial_id: int
    lease_id: str
    number: int
    config: dict[str, Any]
    is_baseline: bool
    lease_s: float
    experiment: ExperimentInfo

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "experiment": self.experiment.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lease:
        return cls(**{**data, "experiment": ExperimentInfo(**data["experiment"])})


class LeaseLost(RuntimeError):
    """The tuner refused a heartbeat or report: the lease expired or is not ours."""


class TunerClient(Protocol):
    """How an agent talks to the tuner."""

    def lease(self) -> Lease | None:
        """The next trial to run, or None when there is no work right now."""
        ...

    def heartbeat(self, lease: Lease) -> None:
        """Extend the lease; raise LeaseLost if it is gone."""
        ...

    def report(self, lease: Lease, outcome: TrialOutcome) -> Trial:
        """Record the result; raise LeaseLost if the lease is gone (nothing is recorded)."""
        ...

    def release(self, lease: Lease) -> None:
        """Give an unfinished trial back so another agent can run it."""
        ...

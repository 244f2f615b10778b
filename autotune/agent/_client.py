"""The agent's view of the tuner: leases in, reports out.

One protocol, two transports: ``LocalClient`` (tuner/_local.py) calls the
scheduler in-process for ``autotune tune``; ``HttpClient`` (service/_client.py)
talks to ``autotune server``. The agent loop is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from autotune.agent._agent import TrialOutcome
from autotune.domain import Trial


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


MIN_TRIAL_S = 1.0  # shorter runs measure start-up and noise more than the config


def trial_duration_s(full_s: float | None, fidelity: float) -> float | None:
    """Measured seconds of a trial run at ``fidelity`` (a share of the full ``full_s``).

    Never below MIN_TRIAL_S, unless the full length itself is shorter; None (no
    length known) stays None.
    """
    if full_s is None or fidelity >= 1.0:
        return full_s
    return min(full_s, max(MIN_TRIAL_S, full_s * fidelity))


@dataclass(frozen=True)
class Lease:
    """A trial an agent holds until ``lease_s`` after its last heartbeat.

    ``duration_s`` is how long to measure: the experiment's duration times
    ``fidelity``, or None when the experiment leaves the length to the
    workload (the agent then scales the workload's own length by ``fidelity``).
    """

    trial_id: int
    lease_id: str
    number: int
    config: dict[str, Any]
    is_baseline: bool
    lease_s: float
    experiment: ExperimentInfo
    fidelity: float = 1.0
    repeat: bool = False
    duration_s: float | None = None
    phase: str = "search"  # search | control | verify
    round: int | None = None  # a verification run's round
    arm: str | None = None  # a verification run's arm
    # A verification run beside a twin: the config the twin runs at the same time, in
    # alternating slices (the default); None: a run on its own.
    reference: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "experiment": self.experiment.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lease:
        """Read a lease from any autotune server: fields it lacks take their defaults
        (a v0.2 server sends no fidelity: full length), fields we do not know are ignored."""
        info_fields = set(ExperimentInfo.__dataclass_fields__)
        info = ExperimentInfo(**{k: v for k, v in data["experiment"].items() if k in info_fields})
        known = set(cls.__dataclass_fields__) - {"experiment"}
        values = {k: v for k, v in data.items() if k in known}
        fidelity = float(values.get("fidelity", 1.0))
        if values.get("duration_s") is None:
            # Left out when it is the experiment's full length (as a v0.2 lease reads).
            values["duration_s"] = trial_duration_s(info.duration_s, fidelity)
        return cls(**{**values, "experiment": info})

    @property
    def label(self) -> str:
        """How progress lines name the trial: number, and what kind of run it is."""
        if self.phase == "verify":
            return f"verify round {self.round}: {self.arm} (trial {self.number})"
        if self.phase == "control":
            return f"trial {self.number} (control: the default again)"
        notes = []
        if self.is_baseline:
            notes.append("baseline")
        if self.repeat:
            notes.append("repeat")
        if self.fidelity < 1.0:
            length = "" if self.duration_s is None else f", {self.duration_s:.3g}s"
            notes.append(f"fidelity {self.fidelity:.2g}{length}")
        return f"trial {self.number}" + (f" ({', '.join(notes)})" if notes else "")


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

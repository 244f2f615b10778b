"""The domain's types, with no dependencies: a trial, a proposal, their statuses and
phases, and the clock. The store, the service, the agent and the report all use
these; an agent host needs nothing else of the server's stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FINISHED = ("ok", "failed")
PHASES = ("search", "control", "verify")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Trial:
    number: int
    config: dict[str, Any]
    status: str  # pending | leased | ok | failed
    objective: float | None
    started_at: datetime | None
    finished_at: datetime | None
    is_baseline: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    status_history: list[tuple[str, ...]] = field(default_factory=list)  # (status, iso time, …)
    not_applied: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    log_excerpt: str | None = None
    id: int | None = field(default=None, compare=False)  # the store's key, once stored
    agent: str | None = None
    proposed_at: datetime | None = None
    lease_expires_at: datetime | None = None
    attempts: int = 0
    fidelity: float = 1.0  # share of the experiment's full duration this trial ran for
    repeat: bool = False  # a deliberate re-measurement of a config already tried
    phase: str = "search"  # search | control | verify (see PHASES)
    round: int | None = None  # a verification run's round, from 1
    arm: str | None = None  # a verification run's arm: default, trial N, pgtune

    @property
    def searched(self) -> bool:
        """A trial of the search (the optimiser's), not a control or verification run."""
        return self.phase == "search"

    @property
    def full(self) -> bool:
        """Ran the full duration: only such trials are comparable, and only they can be best."""
        return self.fidelity >= 1.0 - 1e-9

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "status": self.status,
            "baseline": self.is_baseline,
            "fidelity": self.fidelity,
            "repeat": self.repeat,
            "phase": self.phase,
            "round": self.round,
            "arm": self.arm,
            "objective": self.objective,
            "config": self.config,
            "metrics": self.metrics,
            "timings": self.timings,
            "agent": self.agent,
            "attempts": self.attempts,
            "proposed_at": _iso(self.proposed_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "status_history": self.status_history,
            "not_applied": self.not_applied,
            "error": self.error,
            "log_excerpt": self.log_excerpt,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass
class Proposal:
    """A config the tuner wants measured, before any agent has it."""

    number: int
    config: dict[str, Any]
    is_baseline: bool = False
    fidelity: float = 1.0  # share of the full duration the agent runs it for
    repeat: bool = False  # a re-measurement, proposed to confirm the best
    phase: str = "search"
    round: int | None = None
    arm: str | None = None


__all__ = ["FINISHED", "PHASES", "Proposal", "Trial", "now"]

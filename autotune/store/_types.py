"""The store's plain types and errors, and the mapping of its rows onto them."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from autotune.domain import PHASES, Trial, now
from autotune.store._models import (
    ExperimentRow,
    TrialRow,
)


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message says what to do."""


@dataclass
class Experiment:
    id: int
    name: str
    system: str
    spec_hash: str
    spec_content: str
    spec_path: str
    workload_name: str
    workload_hash: str
    workload_content: str
    workload_path: str
    objective_metric: str
    direction: str
    optimizer: str
    seed: int
    settings: dict[str, Any]
    created_at: datetime
    status: str = "running"  # running | done
    workload_files: dict[str, str] = field(default_factory=dict)
    optimizer_state: dict[str, Any] | None = None  # Optimizer.state_dict(), as last saved

    @property
    def budget(self) -> int:
        """How many trials the experiment runs in all, the baseline included."""
        return int(self.settings.get("budget", 0))

    @property
    def parallelism(self) -> int:
        return int(self.settings.get("parallelism", 1))

    @property
    def allow_colocated(self) -> bool:
        """Whether its trials may run beside another trial on one host (they interfere)."""
        return bool(self.settings.get("allow_colocated", False))

    @property
    def repeats(self) -> int:
        """How many of the budget's last trials re-measure the best configs (0: none)."""
        return int(self.settings.get("repeats") or 0)

    @property
    def duration_s(self) -> float | None:
        """Measured seconds of a full-fidelity trial; None: the workload's own length."""
        value = self.settings.get("duration_s")
        return None if value is None else float(value)

    @property
    def deadline(self) -> datetime | None:
        """When the wall-clock budget (``--time-budget``) runs out; None: no time budget."""
        budget = self.settings.get("time_budget_s")
        started = self.settings.get("time_budget_from")
        if budget is None or started is None:
            return None
        return _aware(datetime.fromisoformat(str(started))) + timedelta(seconds=float(budget))


@dataclass(frozen=True)
class AgentInfo:
    """A registered agent: when it last called the server, and the host it last leased
    from (None: it never said)."""

    name: str
    created_at: datetime
    last_seen_at: datetime | None
    host: str | None = None


@dataclass
class Analysis:
    """A derived result stored with an experiment; ``kind`` says which (analyze, verify)."""

    kind: str
    result: dict[str, Any]
    created_at: datetime
    id: int | None = field(default=None, compare=False)


SEEN_EVERY_S = 60  # how often an agent's last use is written, at most
# Experiment and agent names: what a URL path segment, a file name and a shell word
# can all carry as they are. The CLI, the API and import check this one pattern.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
NAME_RULE = "letters, digits, '-', '_' and '.', starting with a letter or digit, up to 128"


def check_name(name: str, what: str = "experiment") -> None:
    """Raise StoreError unless ``name`` is a valid experiment (or agent) name."""
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise StoreError(f"{what} name {name!r}: use {NAME_RULE}")


class LeaseConflict(StoreError):
    """A lease that is not (or no longer) the caller's: nothing was recorded."""


class BadReport(StoreError):
    """A report that cannot be true: its times fall before the lease or in the future."""


# How far an agent's clock may be from the tuner's before its report's times are refused.
CLOCK_SKEW = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_times(row: TrialRow, result: Trial) -> None:
    """A result's times lie between the lease that ran it and now (give or take a clock)."""
    leased = [h for h in row.status_history if h and h[0] == "leased"]
    since = datetime.fromisoformat(leased[-1][1]) if leased else None
    latest = now() + CLOCK_SKEW
    for what, at in (("started_at", result.started_at), ("finished_at", result.finished_at)):
        if at is None:
            continue
        at = _aware(at)
        if since is not None and at < _aware(since) - CLOCK_SKEW:
            raise BadReport(
                f"trial {row.number}: {what} {at.isoformat()} is before the trial was leased "
                f"({since.isoformat()}); nothing was recorded"
            )
        if at > latest:
            raise BadReport(
                f"trial {row.number}: {what} {at.isoformat()} is in the future; "
                "nothing was recorded"
            )


def _check_numbers(trial: Trial) -> None:
    for name, value in trial.metrics.items():
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise StoreError(f"trial {trial.number}: metric {name!r} is {value!r}, not a number")
    if trial.objective is not None and not math.isfinite(trial.objective):
        raise StoreError(f"trial {trial.number}: objective is {trial.objective!r}")
    _check_fidelity(trial.number, trial.fidelity)
    _check_phase(trial.number, trial.phase, trial.round, trial.arm)


def _check_phase(number: int, phase: str, round_: int | None, arm: str | None) -> None:
    """A verification run names its round and arm; other trials name neither."""
    if phase not in PHASES:
        raise StoreError(f"trial {number}: phase is {phase!r}, not one of {', '.join(PHASES)}")
    if (phase == "verify") != (round_ is not None and arm is not None):
        raise StoreError(f"trial {number}: a verify trial, and only one, has a round and an arm")
    if round_ is not None and round_ < 1:
        raise StoreError(f"trial {number}: round is {round_}, not 1 or more")


def _check_fidelity(number: int, fidelity: float) -> None:
    """A share of the full duration: above 0, at most 1."""
    if not (isinstance(fidelity, int | float) and 0 < fidelity <= 1):
        raise StoreError(f"trial {number}: fidelity is {fidelity!r}, not in (0, 1]")


def _experiment(row: ExperimentRow) -> Experiment:
    return Experiment(
        id=row.id,
        name=row.name,
        system=row.spec.system.name,
        spec_hash=row.spec.content_hash,
        spec_content=row.spec.content,
        spec_path=row.spec.path,
        workload_name=row.workload.name,
        workload_hash=row.workload.content_hash,
        workload_content=row.workload.content,
        workload_path=row.workload.path,
        objective_metric=row.objective_metric,
        direction=row.direction,
        optimizer=row.optimizer,
        seed=row.seed,
        settings=dict(row.settings),
        created_at=_aware(row.created_at),
        status=row.status,
        workload_files=dict(row.workload.files or {}),
        optimizer_state=None if row.optimizer_state is None else dict(row.optimizer_state),
    )


def _aware(value: datetime) -> datetime:
    """SQLite drops the zone; every time we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _maybe(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)


def _trial(row: TrialRow) -> Trial:
    return Trial(
        number=row.number,
        config=dict(row.config),
        status=row.status,
        objective=row.objective,
        started_at=_maybe(row.started_at),
        finished_at=_maybe(row.finished_at),
        is_baseline=row.is_baseline,
        metrics={m.name: m.value for m in row.metrics},
        timings=dict(row.timings),
        status_history=[tuple(str(x) for x in item) for item in row.status_history],
        not_applied=dict(row.not_applied),
        error=row.error,
        log_excerpt=row.log_excerpt,
        id=row.id,
        agent=row.agent,
        proposed_at=_maybe(row.proposed_at),
        lease_expires_at=_maybe(row.lease_expires_at),
        attempts=row.attempts or 0,
        fidelity=float(row.fidelity),
        repeat=bool(row.repeat),
        phase=row.phase,
        round=row.round,
        arm=row.arm,
    )

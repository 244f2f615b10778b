"""Request and response bodies of the tuner service.

Requests are strict: unknown fields are refused, every string, list and map is
bounded, names follow the spec's own naming rules, numbers are finite. Anything
else is a 422 before a handler runs, so no handler sees input it must distrust.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    model_validator,
)

from autotune.agent import HOST_PATTERN, Lease, trial_duration_s
from autotune.service._fields import (
    MAX_DB_INT,
    ConfigValue,
    Document,
    FileText,
    Finite,
    HistoryItem,
    KnobGroup,
    KnobName,
    Label,
    LeaseId,
    LongText,
    MetricName,
    MiB,
    Name,
    OptimizerName,
    RelPath,
    ShortText,
    Strict,
    Timestamp,
)
from autotune.store import AgentInfo, Experiment, Trial
from autotune.tuner import DEFAULT_OPTIMIZER, SAFETY_MARGIN, RobustBest

# -- admin: experiments and agents ------------------------------------------------------------


class MachineIn(Strict):
    """The tuned host, for machine-relative bounds such as ``25% memory``."""

    memory_bytes: Annotated[int, Field(strict=True, ge=64 * MiB, le=2**50)]
    cpus: Annotated[int, Field(strict=True, ge=1, le=4096)]


class ExperimentCreate(Strict):
    """What ``autotune tune`` takes on the command line, with the files' contents inline."""

    name: Name
    spec: Document = Field(description="The knob spec's YAML text.")
    spec_path: Label = Field(description="Where the spec came from; a label in messages.")
    workload: Document = Field(
        description="The workload's YAML text; its objective is the experiment's."
    )
    workload_name: Name = Field(description="The workload file's name, without .yaml.")
    workload_path: Label | None = Field(
        default=None, description="Where the workload came from; a label (default NAME.yaml)."
    )
    files: dict[RelPath, FileText] = Field(
        default_factory=dict,
        max_length=200,
        description="Files the workload names (scripts, SQL), by path relative to it.",
    )
    knobs: Annotated[list[KnobName], Field(min_length=1, max_length=1000)] | KnobGroup | None = (
        Field(default=None, description="Knob names, 'group:NAME', or null for all tunable.")
    )
    budget: Annotated[int, Field(strict=True, ge=1, le=100_000)] = Field(
        description="Trials in all, the baseline included."
    )
    parallelism: Annotated[int, Field(strict=True, ge=1, le=256)] = 1
    optimizer: OptimizerName = DEFAULT_OPTIMIZER
    seed: Annotated[int, Field(strict=True, ge=0, le=MAX_DB_INT)] = 0
    duration_s: Annotated[Finite, Field(gt=0, le=86_400)] | None = Field(
        default=None, description="Measured seconds per trial (default: the workload's)."
    )
    allow_unsafe: Annotated[bool, Field(strict=True)] = False
    restartable: Annotated[bool, Field(strict=True)] = Field(
        default=True,
        description="Whether agents can restart their targets; false leaves out "
        "restart-class knobs, as `autotune tune --dsn` without --restart-command does.",
    )
    lease_s: Annotated[Finite, Field(gt=0, le=86_400)] | None = Field(
        default=None, description="Lease length for this experiment (default: the server's)."
    )
    machine: MachineIn | None = Field(
        default=None, description="The tuned hosts' size (default: the server's own)."
    )
    repeats: Annotated[int, Field(strict=True, ge=0, le=100_000)] | None = Field(
        default=None,
        description="The budget's last trials that re-measure the best configs (default 0).",
    )
    verify: Annotated[bool, Field(strict=True)] | None = Field(
        default=None,
        description="End with a paired verification of the default, the top contenders and "
        "pgtune (default: from 10 trials up).",
    )
    precision: Annotated[Finite, Field(gt=0, lt=1)] = Field(
        default=0.03, description="Verification: add rounds until the best's CI is this narrow."
    )
    max_rounds: Annotated[int, Field(strict=True, ge=2, le=100)] = Field(
        default=10, description="Verification: at most this many rounds."
    )
    twin: Annotated[bool, Field(strict=True)] = Field(
        default=False,
        description="Verification: measure each arm beside a twin of the system running the "
        "default, in alternating slices; only for agents on a managed sandbox.",
    )
    controls: Annotated[int, Field(strict=True, ge=0, le=1000)] = Field(
        default=0,
        description="Drift controls: the default again every this many search trials (0: none).",
    )
    safety_margin: Annotated[Finite, Field(ge=0, le=1)] = Field(
        default=SAFETY_MARGIN,
        description="Do not try configs the model predicts below (1 - this) of the baseline's "
        "performance; 1: no floor.",
    )
    allow_colocated: Annotated[bool, Field(strict=True)] = Field(
        default=False,
        description="Let agents on one host run this experiment's trials side by side (they "
        "measure each other's load); by default one host runs one trial at a time.",
    )
    time_budget_s: Annotated[Finite, Field(gt=0, le=365 * 86_400)] | None = Field(
        default=None,
        description="Wall seconds from now after which no new trial is proposed "
        "(default: none; left out on a resume, the recorded budget and clock are kept).",
    )
    warm_start: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        default="none",
        description="Seed the optimiser with a past experiment's trials: none, auto (the "
        "most similar past workload by its internal metrics) or an experiment's name.",
    )
    start_with: Literal["none", "pgtune"] | None = Field(
        default=None,
        description="Try this config first, after the baseline: pgtune's for the machine. "
        "Default: pgtune for a PostgreSQL spec whose knobs can take its config, else none.",
    )


class ExperimentOut(BaseModel):
    name: str
    status: str
    system: str
    spec_path: str
    workload: str
    workload_path: str
    objective_metric: str
    direction: str
    optimizer: str
    seed: int
    budget: int
    parallelism: int
    allow_colocated: bool = Field(
        default=False, description="Whether agents on one host may run its trials side by side."
    )
    knobs: list[str]
    duration_s: float | None
    lease_s: float | None
    machine: dict[str, int] | None
    created_at: datetime
    trials: int = Field(description="Trials proposed so far, in flight included.")
    finished: int
    failed: int
    repeats: int = Field(default=0, description="The budget's last trials that re-measure.")
    time_budget_s: float | None = None
    deadline: datetime | None = Field(
        default=None, description="When the time budget runs out: no trial is proposed after."
    )
    verify: dict[str, Any] | None = Field(
        default=None, description="How the search's claim is verified after it; null: it is not."
    )

    @classmethod
    def of(cls, experiment: Experiment, counts: dict[str, int]) -> ExperimentOut:
        """From the store's trial counts by status: no trial needs loading."""
        settings = experiment.settings
        return cls(
            name=experiment.name,
            status=experiment.status,
            system=experiment.system,
            spec_path=experiment.spec_path,
            workload=experiment.workload_name,
            workload_path=experiment.workload_path,
            objective_metric=experiment.objective_metric,
            direction=experiment.direction,
            optimizer=experiment.optimizer,
            seed=experiment.seed,
            budget=experiment.budget,
            parallelism=experiment.parallelism,
            allow_colocated=experiment.allow_colocated,
            knobs=list(settings.get("knobs", [])),
            duration_s=settings.get("duration_s"),
            lease_s=settings.get("lease_s"),
            machine=settings.get("machine"),
            created_at=experiment.created_at,
            trials=sum(counts.values()),
            finished=counts.get("ok", 0) + counts.get("failed", 0),
            failed=counts.get("failed", 0),
            repeats=experiment.repeats,
            time_budget_s=settings.get("time_budget_s"),
            deadline=experiment.deadline,
            verify=settings.get("verify"),
        )


class ExperimentCreated(BaseModel):
    experiment: ExperimentOut
    resumed: bool = Field(description="True if an experiment with this definition existed.")
    notes: list[str] = Field(description="Knobs left out, and why.")


class TrialOut(BaseModel):
    id: int
    number: int
    status: str
    baseline: bool
    agent: str | None
    attempts: int
    proposed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    config: dict[str, Any]
    objective: float | None
    metrics: dict[str, float]
    timings: dict[str, float]
    status_history: list[list[str]]
    not_applied: dict[str, str]
    error: str | None
    log_excerpt: str | None
    fidelity: float = Field(default=1.0, description="Share of the full duration it ran for.")
    repeat: bool = Field(default=False, description="A re-measurement of a config tried before.")
    phase: str = Field(default="search", description="search, control or verify.")
    round: int | None = Field(default=None, description="A verification run's round, from 1.")
    arm: str | None = Field(default=None, description="A verification run's arm.")

    @classmethod
    def of(cls, trial: Trial) -> TrialOut:
        assert trial.id is not None
        return cls(
            id=trial.id,
            number=trial.number,
            status=trial.status,
            baseline=trial.is_baseline,
            fidelity=trial.fidelity,
            repeat=trial.repeat,
            phase=trial.phase,
            round=trial.round,
            arm=trial.arm,
            agent=trial.agent,
            attempts=trial.attempts,
            proposed_at=trial.proposed_at,
            started_at=trial.started_at,
            finished_at=trial.finished_at,
            lease_expires_at=trial.lease_expires_at,
            config=trial.config,
            objective=trial.objective,
            metrics=trial.metrics,
            timings=trial.timings,
            status_history=[list(item) for item in trial.status_history],
            not_applied=trial.not_applied,
            error=trial.error,
            log_excerpt=trial.log_excerpt,
        )

    def to_trial(self) -> Trial:
        """Back to the store's dataclass, for code shared with the local path."""
        return Trial(
            id=self.id,
            number=self.number,
            config=self.config,
            status=self.status,
            objective=self.objective,
            started_at=self.started_at,
            finished_at=self.finished_at,
            is_baseline=self.baseline,
            metrics=self.metrics,
            timings=self.timings,
            status_history=[tuple(item) for item in self.status_history],
            not_applied=self.not_applied,
            error=self.error,
            log_excerpt=self.log_excerpt,
            agent=self.agent,
            proposed_at=self.proposed_at,
            lease_expires_at=self.lease_expires_at,
            attempts=self.attempts,
            fidelity=self.fidelity,
            repeat=self.repeat,
            phase=self.phase,
            round=self.round,
            arm=self.arm,
        )


class RobustOut(BaseModel):
    """The noise-aware best: the best median among configs measured twice or more."""

    trial: int = Field(description="The trial that found the config.")
    runs: int
    trials: list[int] = Field(description="Every full-length ok run of the config.")
    values: list[float]
    median: float
    confirmed: bool = Field(description="False: no config ran twice; this is one run.")
    baseline_median: float | None
    baseline_runs: int | None
    ratio: float | None = Field(description="Median vs the baseline's; > 1 is better.")
    ratio_ci: list[float] | None = Field(description="95% bootstrap CI of the ratio.")
    significant: bool = Field(description="The CI excludes 1.")
    unstable: bool = Field(description="Its runs disagree: cv > 0.1 or range > 25% of median.")
    cv: float | None
    spread: float | None
    unstable_trials: list[int] = Field(description="First trial of each unstable config.")

    @classmethod
    def of(cls, robust: RobustBest) -> RobustOut:
        return cls.model_validate(robust.to_json())


class BestOut(BaseModel):
    experiment: str
    status: str
    objective_metric: str
    direction: str
    budget: int
    trials: int = Field(description="Finished trials.")
    failed: int
    baseline: TrialOut | None
    best: TrialOut | None = Field(description="The trial that found the best config.")
    improvement_pct: float | None = Field(description="Medians' change, positive when better.")
    robust: RobustOut | None = Field(
        default=None, description="The best config's runs and its ratio to the baseline."
    )
    verification: dict[str, Any] | None = Field(
        default=None,
        description="The paired verification after the search: every arm's runs, its "
        "ratio to the default with a 95% CI, the best and the verdict.",
    )


class AgentCreate(Strict):
    name: Name


class AgentToken(BaseModel):
    name: str
    token: str = Field(description="Shown once; the store keeps only its hash.")


class AgentOut(BaseModel):
    name: str
    created_at: datetime
    last_seen_at: datetime | None = Field(
        description="Its last call, to the minute (written at most once a minute)."
    )
    host: str | None = Field(description="The host it last leased from; null: never said.")

    def to_info(self) -> AgentInfo:
        return AgentInfo(self.name, self.created_at, self.last_seen_at, self.host)


# -- agents: leases and reports ---------------------------------------------------------------


class LeaseRequest(Strict):
    experiment: Name | None = Field(default=None, description="Only trials of this experiment.")
    host: Annotated[str, Field(pattern=HOST_PATTERN, strict=True)] | None = Field(
        default=None,
        description="The host this agent runs on (its kernel's boot id, say): no trial is "
        "leased while another agent runs one on the same host, unless the experiments "
        "allow colocated trials. Left out: the agent's trials are not kept apart.",
    )


class ExperimentInfoOut(BaseModel):
    """autotune.agent.ExperimentInfo, field for field."""

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
    machine: dict[str, int] | None
    workload_files: dict[str, str]


class LeaseOut(BaseModel):
    """autotune.agent.Lease, field for field (Lease.to_json).

    The fields from ``fidelity`` on are sent only when they differ from a
    full-length, first search run (``exclude_defaults``): such a lease reads
    exactly as a v0.2 one, so older agents keep running those trials.
    """

    trial_id: int
    lease_id: str
    number: int
    config: dict[str, Any]
    is_baseline: bool
    lease_s: float
    experiment: ExperimentInfoOut
    fidelity: float = Field(default=1.0, description="Share of the full duration to run.")
    repeat: bool = Field(default=False, description="A re-measurement of a config tried before.")
    duration_s: float | None = Field(
        default=None,
        description="Seconds to measure; left out: the experiment's duration_s "
        "(or, that null, the workload's own length scaled by fidelity).",
    )
    phase: str = Field(default="search", description="search, control or verify.")
    round: int | None = Field(default=None, description="A verification run's round.")
    arm: str | None = Field(default=None, description="A verification run's arm.")
    reference: dict[str, Any] | None = Field(
        default=None,
        description="A verification run beside a twin: the config the twin runs meanwhile.",
    )

    @classmethod
    def of(cls, lease: Lease) -> LeaseOut:
        data = lease.to_json()
        if data["duration_s"] == trial_duration_s(lease.experiment.duration_s, 1.0) and (
            lease.fidelity >= 1.0
        ):
            data["duration_s"] = None  # the experiment's: implied, as a v0.2 agent expects
        return cls.model_validate(data)


class LeaseRef(Strict):
    lease_id: LeaseId


class HeartbeatOut(BaseModel):
    expires_at: datetime


class Released(BaseModel):
    trial_id: int
    status: Literal["pending"] = "pending"


class OutcomeIn(Strict):
    """autotune.agent.TrialOutcome as an agent reports it."""

    status: Literal["ok", "failed"]
    metrics: dict[MetricName, Finite] = Field(default_factory=dict, max_length=2000)
    timings: dict[MetricName, Annotated[Finite, Field(ge=0)]] = Field(
        default_factory=dict, max_length=100
    )
    status_history: Annotated[
        list[Annotated[list[HistoryItem], Field(min_length=1, max_length=4)]],
        Field(max_length=200),
    ] = Field(default_factory=list, description="[status, ISO time, detail…] per phase.")
    not_applied: dict[KnobName, ShortText] = Field(default_factory=dict, max_length=1000)
    error: ShortText | None = None
    log_excerpt: LongText | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    config: dict[KnobName, ConfigValue] | None = Field(
        default=None,
        max_length=1000,
        description="A baseline's config as the target ran it, when not the leased one.",
    )

    @model_validator(mode="after")
    def _in_order(self) -> OutcomeIn:
        if self.started_at and self.finished_at and self.finished_at < self.started_at:
            raise ValueError(
                f"finished_at {self.finished_at.isoformat()} is before started_at "
                f"{self.started_at.isoformat()}"
            )
        return self


class ReportIn(Strict):
    lease_id: LeaseId
    outcome: OutcomeIn


class Problem(BaseModel):
    """Every error response: one readable line, and one line per problem."""

    detail: str
    problems: list[str] = Field(default_factory=list)


class Health(BaseModel):
    status: Literal["ok"] = "ok"

"""Tables of the results store. Migrations in ``migrations/`` must match these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class SystemRow(Base):
    __tablename__ = "systems"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SpecRow(Base):
    """A knob spec, versioned by the hash of its text."""

    __tablename__ = "specs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    content: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    system: Mapped[SystemRow] = relationship(lazy="joined")


class WorkloadRow(Base):
    __tablename__ = "workloads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    content: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    # Files the workload names (scripts, setup SQL, queries), relative to it, so a
    # remote agent can run it without the tuner's file system.
    files: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgentRow(Base):
    """An agent allowed to lease trials; only a hash of its token is kept."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    host: Mapped[str | None] = mapped_column(String(64), nullable=True)  # as of its last lease


class ExperimentRow(Base):
    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec_id: Mapped[int] = mapped_column(ForeignKey("specs.id"))
    workload_id: Mapped[int] = mapped_column(ForeignKey("workloads.id"))
    objective_metric: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(16))
    optimizer: Mapped[str] = mapped_column(String(100))
    seed: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Optimizer.state_dict(): what a rebuilt optimiser cannot get from the history.
    optimizer_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Loaded with the experiment: every use of an experiment needs both.
    spec: Mapped[SpecRow] = relationship(lazy="joined")
    workload: Mapped[WorkloadRow] = relationship(lazy="joined")


class TrialRow(Base):
    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("experiment_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    # Share of the experiment's full duration this trial ran for (multi-fidelity screening).
    fidelity: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    # A deliberate re-measurement of a config already tried (racing the incumbent).
    repeat: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # search: the optimiser's; control: a drift control run; verify: a verification run,
    # one arm's run in one round.
    phase: Mapped[str] = mapped_column(String(16), default="search", server_default="search")
    round: Mapped[int | None] = mapped_column(Integer, nullable=True)
    arm: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | leased | ok | failed
    status_history: Mapped[list[Any]] = mapped_column(JSON)
    objective: Mapped[float | None] = mapped_column(Float, nullable=True)
    proposed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The host the agent holding (or last holding) the lease runs on; None: not said.
    host: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    lease_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON)
    not_applied: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[list[MetricRow]] = relationship(
        cascade="all, delete-orphan", order_by="MetricRow.name", lazy="selectin"
    )


class AnalysisRow(Base):
    """A derived result kept with its experiment: a knob ranking, a verification."""

    __tablename__ = "analyses"
    __table_args__ = (Index("ix_analyses_experiment_kind", "experiment_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # analyze | verify
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)


class MetricRow(Base):
    __tablename__ = "metrics"
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float] = mapped_column(Float)

"""The results store: every experiment, trial, config, metric and failure.

SQLite is the embedded default; any SQLAlchemy URL works, PostgreSQL included.
The schema is managed by Alembic; a store made by an older autotune is never
touched silently, the error names the upgrade command (as Optuna does).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, make_url, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from autotune.store._models import (
    ExperimentRow,
    MetricRow,
    SpecRow,
    SystemRow,
    TrialRow,
    WorkloadRow,
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message says what to do."""


def default_url() -> str:
    env = os.environ.get("AUTOTUNE_STORE")
    if env:
        return env
    return f"sqlite:///{Path.cwd() / '.autotune' / 'autotune.db'}"


def now() -> datetime:
    return datetime.now(UTC)


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


@dataclass
class Trial:
    number: int
    config: dict[str, Any]
    status: str  # ok | failed
    objective: float | None
    started_at: datetime
    finished_at: datetime
    is_baseline: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    status_history: list[tuple[str, str]] = field(default_factory=list)
    not_applied: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    log_excerpt: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "status": self.status,
            "baseline": self.is_baseline,
            "objective": self.objective,
            "config": self.config,
            "metrics": self.metrics,
            "timings": self.timings,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "status_history": self.status_history,
            "not_applied": self.not_applied,
            "error": self.error,
            "log_excerpt": self.log_excerpt,
        }


def _alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "<unparseable URL>"


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            # SQLAlchemy 2.1 defaults to psycopg 3; psycopg2 is what autotune ships with.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        engine = create_engine(parsed)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot open store {_hide_password(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    return engine


def upgrade(url: str) -> tuple[str | None, str]:
    """Bring a store to the current schema; returns (old revision, new revision)."""
    engine = _make_engine(url)
    cfg = _alembic_config(url)
    with engine.begin() as conn:
        old = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    engine.dispose()
    return old, ScriptDirectory.from_config(cfg).get_current_head() or ""


class Store:
    """Repository over the results tables; returns plain dataclasses, not ORM rows."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine = _make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._check_schema()

    def _check_schema(self) -> None:
        cfg = _alembic_config(self.url)
        script = ScriptDirectory.from_config(cfg)
        head = script.get_current_head()
        try:
            with self.engine.connect() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
                tables = set(inspect(conn).get_table_names())
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store {self.safe_url}: {exc}") from None
        if current == head:
            return
        if current is None and not tables & {"experiments", "trials"}:
            upgrade(self.url)  # a new, empty store
            return
        if current is None:
            raise StoreError(
                f"store {self.safe_url} has tables but no autotune schema version: it was not "
                "made by autotune; give --store a new database"
            )
        known = {rev.revision for rev in script.walk_revisions()}
        if current in known:
            raise StoreError(
                f"store {self.safe_url} uses an older schema ({current}; "
                f"this autotune needs {head}); back it up, then run: "
                f"autotune store upgrade --store {self.safe_url}"
            )
        raise StoreError(
            f"store {self.safe_url} was made by a newer autotune (schema {current}); "
            "upgrade autotune to read it"
        )

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # -- specs and workloads ---------------------------------------------------------
    def _put_spec(self, session: Session, system: str, content: str, digest: str, path: str) -> int:
        row = session.scalar(select(SpecRow).where(SpecRow.content_hash == digest))
        if row is not None:
            return row.id
        sys_row = session.scalar(select(SystemRow).where(SystemRow.name == system))
        if sys_row is None:
            sys_row = SystemRow(name=system, created_at=now())
            session.add(sys_row)
            session.flush()
        row = SpecRow(
            system_id=sys_row.id, content_hash=digest, content=content, path=path, created_at=now()
        )
        session.add(row)
        session.flush()
        return row.id

    def _put_workload(
        self, session: Session, name: str, content: str, digest: str, path: str
    ) -> int:
        row = session.scalar(select(WorkloadRow).where(WorkloadRow.content_hash == digest))
        if row is None:
            row = WorkloadRow(
                name=name, content_hash=digest, content=content, path=path, created_at=now()
            )
            session.add(row)
            session.flush()
        return row.id

    # -- experiments ------------------------------------------------------------------
    def create_experiment(
        self,
        *,
        name: str,
        system: str,
        spec_content: str,
        spec_hash: str,
        spec_path: str,
        workload_name: str,
        workload_content: str,
        workload_hash: str,
        workload_path: str,
        objective_metric: str,
        direction: str,
        optimizer: str,
        seed: int,
        settings: dict[str, Any],
    ) -> Experiment:
        try:
            with self._session() as session:
                spec_id = self._put_spec(session, system, spec_content, spec_hash, spec_path)
                workload_id = self._put_workload(
                    session, workload_name, workload_content, workload_hash, workload_path
                )
                session.add(
                    ExperimentRow(
                        name=name,
                        spec_id=spec_id,
                        workload_id=workload_id,
                        objective_metric=objective_metric,
                        direction=direction,
                        optimizer=optimizer,
                        seed=seed,
                        settings=settings,
                        created_at=now(),
                    )
                )
        except IntegrityError:
            raise StoreError(f"experiment {name!r} already exists") from None
        experiment = self.experiment(name)
        assert experiment is not None
        return experiment

    def experiment(self, name: str) -> Experiment | None:
        with self._session() as session:
            row = session.scalar(select(ExperimentRow).where(ExperimentRow.name == name))
            return None if row is None else _experiment(row)

    def require_experiment(self, name: str) -> Experiment:
        experiment = self.experiment(name)
        if experiment is None:
            known = [e.name for e in self.experiments()]
            hint = f"; known: {', '.join(known)}" if known else "; the store has none yet"
            raise StoreError(f"no experiment {name!r} in {self.safe_url}{hint}")
        return experiment

    def experiments(self) -> list[Experiment]:
        with self._session() as session:
            rows = session.scalars(select(ExperimentRow).order_by(ExperimentRow.id))
            return [_experiment(row) for row in rows]

    # -- trials -----------------------------------------------------------------------
    def add_trial(self, experiment: Experiment, trial: Trial) -> None:
        """Record a trial with its metrics in one transaction: whole or not at all."""
        for name, value in trial.metrics.items():
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise StoreError(
                    f"trial {trial.number}: metric {name!r} is {value!r}, not a number"
                )
        if trial.objective is not None and not math.isfinite(trial.objective):
            raise StoreError(f"trial {trial.number}: objective is {trial.objective!r}")
        try:
            with self._session() as session:
                row = TrialRow(
                    experiment_id=experiment.id,
                    number=trial.number,
                    config=trial.config,
                    is_baseline=trial.is_baseline,
                    status=trial.status,
                    status_history=[list(item) for item in trial.status_history],
                    objective=trial.objective,
                    started_at=trial.started_at,
                    finished_at=trial.finished_at,
                    timings=trial.timings,
                    not_applied=trial.not_applied,
                    error=trial.error,
                    log_excerpt=trial.log_excerpt,
                )
                row.metrics = [MetricRow(name=k, value=float(v)) for k, v in trial.metrics.items()]
                session.add(row)
        except IntegrityError as exc:
            if any(t.number == trial.number for t in self.trials(experiment)):
                raise StoreError(
                    f"trial {trial.number} of {experiment.name!r} is already recorded"
                ) from None
            raise StoreError(f"cannot record trial {trial.number}: {exc.orig}") from None

    def trials(self, experiment: Experiment) -> list[Trial]:
        with self._session() as session:
            rows = session.scalars(
                select(TrialRow)
                .where(TrialRow.experiment_id == experiment.id)
                .order_by(TrialRow.number)
            )
            return [_trial(row) for row in rows]


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
    )


def _aware(value: datetime) -> datetime:
    """SQLite drops the zone; every time we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _trial(row: TrialRow) -> Trial:
    return Trial(
        number=row.number,
        config=dict(row.config),
        status=row.status,
        objective=row.objective,
        started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at),
        is_baseline=row.is_baseline,
        metrics={m.name: m.value for m in row.metrics},
        timings=dict(row.timings),
        status_history=[(str(a), str(b)) for a, b in row.status_history],
        not_applied=dict(row.not_applied),
        error=row.error,
        log_excerpt=row.log_excerpt,
    )

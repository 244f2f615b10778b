"""The results store: every experiment, trial, config, metric and failure.

SQLite is the embedded default; any SQLAlchemy URL works, PostgreSQL included.
The schema is managed by Alembic; a store made by an older autotune is never
touched silently, the error names the upgrade command (as Optuna does).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, inspect, make_url, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from autotune.domain import FINISHED, PHASES, Proposal, Trial, now
from autotune.store._models import (
    AgentRow,
    AnalysisRow,
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


def _make_engine(url: str, foreign_keys: bool = True) -> Engine:
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
            cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()
            dbapi_conn.isolation_level = None  # SQLAlchemy, not the driver, begins transactions

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            # SQLite ignores FOR UPDATE; taking the write lock at BEGIN makes each
            # read-then-update (lease_next, _held) atomic across threads and processes.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade(url: str) -> tuple[str | None, str]:
    """Bring a store to the current schema; returns (old revision, new revision)."""
    # SQLite migrations rebuild tables (drop and copy); with foreign keys on, dropping
    # the old trials table would cascade into its metrics.
    engine = _make_engine(url, foreign_keys=False)
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
        self,
        session: Session,
        name: str,
        content: str,
        digest: str,
        path: str,
        files: dict[str, str],
    ) -> int:
        row = session.scalar(select(WorkloadRow).where(WorkloadRow.content_hash == digest))
        if row is None:
            row = WorkloadRow(
                name=name,
                content_hash=digest,
                content=content,
                path=path,
                files=files,
                created_at=now(),
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
        workload_files: dict[str, str] | None = None,
    ) -> Experiment:
        check_name(name)
        try:
            with self._session() as session:
                spec_id = self._put_spec(session, system, spec_content, spec_hash, spec_path)
                workload_id = self._put_workload(
                    session,
                    workload_name,
                    workload_content,
                    workload_hash,
                    workload_path,
                    workload_files or {},
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
                        status="running",
                        created_at=now(),
                    )
                )
        except IntegrityError:
            raise StoreError(f"experiment {name!r} already exists") from None
        experiment = self.experiment(name)
        assert experiment is not None
        return experiment

    def restore_experiment(
        self,
        experiment: Experiment,
        trials: Sequence[Trial],
        analyses: Sequence[Analysis] = (),
    ) -> Experiment:
        """Insert an experiment recorded elsewhere, exactly as given, in one transaction.

        Unlike ``create_experiment``, the recorded ``created_at``, ``status``,
        ``optimizer_state`` and settings are kept, and every trial goes in with
        every recorded field (``lease_id`` aside: leases are never copied) plus
        its metrics, then the analyses. All or nothing: any failure (the name
        taken, a trial number twice, a bad metric) leaves the store unchanged.
        ``experiment.id`` and the trials' and analyses' ids are ignored.
        Spec and workload rows are shared by content hash, as ``create_experiment``
        shares them: if the store already holds that content, that row is used.
        """
        for trial in trials:
            _check_numbers(trial)
        e = experiment
        try:
            with self._session() as session:
                taken = session.scalar(select(ExperimentRow.id).where(ExperimentRow.name == e.name))
                if taken is not None:
                    raise StoreError(f"experiment {e.name!r} already exists in {self.safe_url}")
                spec_id = self._put_spec(
                    session, e.system, e.spec_content, e.spec_hash, e.spec_path
                )
                workload_id = self._put_workload(
                    session,
                    e.workload_name,
                    e.workload_content,
                    e.workload_hash,
                    e.workload_path,
                    dict(e.workload_files),
                )
                row = ExperimentRow(
                    name=e.name,
                    spec_id=spec_id,
                    workload_id=workload_id,
                    objective_metric=e.objective_metric,
                    direction=e.direction,
                    optimizer=e.optimizer,
                    seed=e.seed,
                    settings=e.settings,
                    status=e.status,
                    created_at=e.created_at,
                    optimizer_state=e.optimizer_state,
                )
                session.add(row)
                session.flush()
                for t in trials:
                    trial_row = TrialRow(
                        experiment_id=row.id,
                        number=t.number,
                        config=t.config,
                        is_baseline=t.is_baseline,
                        fidelity=t.fidelity,
                        repeat=t.repeat,
                        phase=t.phase,
                        round=t.round,
                        arm=t.arm,
                        status=t.status,
                        status_history=[list(item) for item in t.status_history],
                        objective=t.objective,
                        proposed_at=t.proposed_at,
                        started_at=t.started_at,
                        finished_at=t.finished_at,
                        agent=t.agent,
                        lease_expires_at=t.lease_expires_at,
                        attempts=t.attempts,
                        timings=t.timings,
                        not_applied=t.not_applied,
                        error=t.error,
                        log_excerpt=t.log_excerpt,
                    )
                    trial_row.metrics = [
                        MetricRow(name=k, value=float(v)) for k, v in t.metrics.items()
                    ]
                    session.add(trial_row)
                    session.flush()  # one trial at a time: a clash names its number
                for a in analyses:
                    session.add(
                        AnalysisRow(
                            experiment_id=row.id,
                            kind=a.kind,
                            created_at=a.created_at,
                            result=a.result,
                        )
                    )
                session.flush()
        except IntegrityError as exc:
            counts = Counter(t.number for t in trials)
            twice = sorted(n for n, k in counts.items() if k > 1)
            if twice:
                raise StoreError(
                    f"cannot import experiment {e.name!r}: trial {twice[0]} appears twice"
                ) from None
            if self.experiment(e.name) is not None:
                taken_msg = f"experiment {e.name!r} already exists in {self.safe_url}"
                raise StoreError(taken_msg) from None
            raise StoreError(f"cannot import experiment {e.name!r}: {exc.orig}") from None
        restored = self.experiment(e.name)
        assert restored is not None
        return restored

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
        _check_numbers(trial)
        try:
            with self._session() as session:
                row = TrialRow(
                    experiment_id=experiment.id,
                    number=trial.number,
                    proposed_at=trial.proposed_at,
                    agent=trial.agent,
                    attempts=trial.attempts,
                    config=trial.config,
                    is_baseline=trial.is_baseline,
                    fidelity=trial.fidelity,
                    repeat=trial.repeat,
                    phase=trial.phase,
                    round=trial.round,
                    arm=trial.arm,
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

    def trials(self, experiment: Experiment, finished_only: bool = False) -> list[Trial]:
        """The experiment's trials by number; with ``finished_only``, just ok and failed ones."""
        query = (
            select(TrialRow)
            .where(TrialRow.experiment_id == experiment.id)
            .options(selectinload(TrialRow.metrics))  # one query for all metrics, not one each
        )
        if finished_only:
            query = query.where(TrialRow.status.in_(FINISHED))
        with self._session() as session:
            return [_trial(row) for row in session.scalars(query.order_by(TrialRow.number))]

    def history(
        self, experiment: Experiment, after: int = 0, numbers: Sequence[int] = ()
    ) -> list[Trial]:
        """Trials with only what the scheduler needs (config, status, objective, fidelity,
        phase, times).

        Cheap to load: proposing happens on the lease path, so it must not drag metrics,
        timings and logs of thousands of trials through the ORM each time.
        ``after`` and ``numbers`` fetch just the trials numbered above ``after``
        plus the listed ones, for callers that keep the rest.
        """
        columns = (
            TrialRow.id,
            TrialRow.number,
            TrialRow.config,
            TrialRow.status,
            TrialRow.objective,
            TrialRow.is_baseline,
            TrialRow.fidelity,
            TrialRow.repeat,
            TrialRow.phase,
            TrialRow.round,
            TrialRow.arm,
            TrialRow.started_at,
            TrialRow.finished_at,
        )
        with self._session() as session:
            wanted = TrialRow.number > after
            if numbers:
                wanted = wanted | TrialRow.number.in_(list(numbers))
            rows = list(
                session.execute(
                    select(*columns)
                    .where(TrialRow.experiment_id == experiment.id, wanted)
                    .order_by(TrialRow.number)
                )
            )
            # A verification's runs carry what they were measured against (a twin's
            # default): the few metrics of those, not of the search's thousands.
            verify_ids = [row.id for row in rows if row.phase == "verify"]
            metrics: dict[int, dict[str, float]] = {}
            if verify_ids:
                found = session.execute(
                    select(MetricRow.trial_id, MetricRow.name, MetricRow.value).where(
                        MetricRow.trial_id.in_(verify_ids)
                    )
                )
                for trial_id, name, value in found:
                    metrics.setdefault(trial_id, {})[name] = value
            return [
                Trial(
                    number=row.number,
                    config=row.config,
                    status=row.status,
                    objective=row.objective,
                    started_at=_maybe(row.started_at),
                    finished_at=_maybe(row.finished_at),
                    is_baseline=row.is_baseline,
                    fidelity=row.fidelity,
                    repeat=row.repeat,
                    phase=row.phase,
                    round=row.round,
                    arm=row.arm,
                    metrics=metrics.get(row.id, {}),
                )
                for row in rows
            ]

    def trial_counts(self, experiment: Experiment, phase: str | None = None) -> dict[str, int]:
        """Trials by status (of one phase, if given), counted in the database: the lease
        path's cheap check."""
        where = TrialRow.experiment_id == experiment.id
        if phase is not None:
            where = where & (TrialRow.phase == phase)
        with self._session() as session:
            rows = session.execute(
                select(TrialRow.status, func.count()).where(where).group_by(TrialRow.status)
            )
            return {str(status): int(n) for status, n in rows}

    def update_experiment(
        self,
        experiment: Experiment,
        *,
        status: str | None = None,
        budget: int | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Experiment:
        """Change the status, the budget, or settings (merged key by key into the recorded ones)."""
        with self._session() as session:
            # Lock the experiment row only: PostgreSQL refuses FOR UPDATE across the
            # outer joins that load its spec and workload.
            row = session.get(ExperimentRow, experiment.id, with_for_update={"of": ExperimentRow})
            assert row is not None
            if status is not None:
                row.status = status
            merged = dict(row.settings)
            if settings is not None:
                merged.update(settings)
            if budget is not None:
                merged["budget"] = budget
            if merged != row.settings:
                row.settings = merged
            return _experiment(row)

    def save_optimizer_state(self, experiment: Experiment, state: dict[str, Any] | None) -> None:
        """Keep the optimiser's state_dict() with its experiment, for the next tuner to load."""
        with self._session() as session:
            row = session.get(ExperimentRow, experiment.id, with_for_update={"of": ExperimentRow})
            if row is None:
                raise StoreError(f"experiment {experiment.name!r} is gone")
            row.optimizer_state = state

    def add_analysis(
        self,
        experiment: Experiment,
        kind: str,
        result: dict[str, Any],
        created_at: datetime | None = None,
    ) -> Analysis:
        """Keep a derived result; earlier ones of the same kind stay, as history."""
        with self._session() as session:
            row = AnalysisRow(
                experiment_id=experiment.id,
                kind=kind,
                created_at=created_at or now(),
                result=result,
            )
            session.add(row)
            session.flush()
            return Analysis(row.kind, row.result, _aware(row.created_at), row.id)

    def analyses(self, experiment: Experiment, kind: str | None = None) -> list[Analysis]:
        """An experiment's analyses, oldest first; only ``kind`` ones if given."""
        with self._session() as session:
            query = select(AnalysisRow).where(AnalysisRow.experiment_id == experiment.id)
            if kind is not None:
                query = query.where(AnalysisRow.kind == kind)
            rows = session.scalars(query.order_by(AnalysisRow.created_at, AnalysisRow.id))
            return [Analysis(r.kind, r.result, _aware(r.created_at), r.id) for r in rows]

    def experiment_of_trial(self, trial_id: int) -> Experiment:
        with self._session() as session:
            row = session.get(TrialRow, trial_id)
            if row is None:
                raise LeaseConflict(f"no trial {trial_id}")
            experiment = session.get(ExperimentRow, row.experiment_id)
            assert experiment is not None
            return _experiment(experiment)

    def running_experiments(self) -> list[Experiment]:
        with self._session() as session:
            rows = session.scalars(
                select(ExperimentRow)
                .where(ExperimentRow.status == "running")
                .order_by(ExperimentRow.id)
            )
            return [_experiment(row) for row in rows]

    # -- proposals and leases ---------------------------------------------------------
    def add_proposals(self, experiment: Experiment, proposals: list[Proposal]) -> bool:
        """Insert pending trials; False if another tuner proposed those numbers first.

        The (experiment, number) key makes concurrent proposers safe: exactly
        one batch per number wins, the other is dropped whole.
        """
        for p in proposals:
            _check_fidelity(p.number, p.fidelity)
            _check_phase(p.number, p.phase, p.round, p.arm)
        try:
            with self._session() as session:
                for p in proposals:
                    session.add(
                        TrialRow(
                            experiment_id=experiment.id,
                            number=p.number,
                            config=p.config,
                            is_baseline=p.is_baseline,
                            fidelity=p.fidelity,
                            repeat=p.repeat,
                            phase=p.phase,
                            round=p.round,
                            arm=p.arm,
                            status="pending",
                            status_history=[["pending", now().isoformat()]],
                            proposed_at=now(),
                            timings={},
                            not_applied={},
                            attempts=0,
                        )
                    )
        except IntegrityError:
            return False
        return True

    def lease_next(
        self, experiment: Experiment, agent: str, lease_s: float, host: str | None = None
    ) -> tuple[Trial, str] | None:
        """Lease the lowest pending (or lease-expired) trial: never to two agents at once.

        An agent that says which ``host`` it runs on gets nothing while another
        agent holds a live lease on that host, unless this experiment and every
        experiment running there allow colocated trials: two trials side by side
        measure each other's load.

        On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets concurrent servers take
        different rows, and a transaction lock on the host's name serialises the
        host check; SQLite serialises writers, and its server is the only one.
        """
        t = now()
        with self._session() as session:
            if host is not None and self._host_busy(session, experiment, agent, host, t):
                return None
            row = session.scalar(
                select(TrialRow)
                .where(
                    TrialRow.experiment_id == experiment.id,
                    (TrialRow.status == "pending")
                    | ((TrialRow.status == "leased") & (TrialRow.lease_expires_at < t)),
                )
                .order_by(TrialRow.number)
                .limit(1)
                .with_for_update(skip_locked=True, of=TrialRow)
            )
            if row is None:
                return None
            lease_id = secrets.token_hex(16)
            if row.status == "leased":
                row.status_history = [*row.status_history, ["expired", t.isoformat()]]
            row.status = "leased"
            row.agent = agent
            row.lease_id = lease_id
            row.lease_expires_at = t + timedelta(seconds=lease_s)
            row.host = host
            row.attempts = (row.attempts or 0) + 1
            row.status_history = [*row.status_history, ["leased", t.isoformat(), agent]]
            session.flush()
            return _trial(row), lease_id

    def note_host(self, agent: str, host: str) -> None:
        """Keep the host an agent last asked for work from, for listings and the follow
        output; written only when it changes."""
        with self._session() as session:
            row = session.scalar(select(AgentRow).where(AgentRow.name == agent))
            if row is not None and row.host != host:
                row.host = host

    def _host_busy(
        self, session: Session, experiment: Experiment, agent: str, host: str, at: datetime
    ) -> bool:
        """Whether another agent holds a live lease on ``host`` that this one may not join."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                select(func.pg_advisory_xact_lock(func.hashtext("autotune host " + host)))
            )
        held = session.scalars(
            select(TrialRow.experiment_id).where(
                TrialRow.status == "leased",
                TrialRow.host == host,
                TrialRow.agent != agent,
                TrialRow.lease_expires_at >= at,
            )
        ).all()
        if not held:
            return False
        if not experiment.allow_colocated:
            return True
        rows = session.scalars(select(ExperimentRow).where(ExperimentRow.id.in_(set(held))))
        return not all(_experiment(r).allow_colocated for r in rows)

    def _held(self, session: Session, trial_id: int, lease_id: str, agent: str) -> TrialRow:
        row = session.get(TrialRow, trial_id, with_for_update={"of": TrialRow})
        if row is None:
            raise LeaseConflict(f"no trial {trial_id}")
        if row.status != "leased" or row.lease_id != lease_id or row.agent != agent:
            raise LeaseConflict(f"trial {trial_id} is not leased to {agent} under this lease")
        expires = row.lease_expires_at
        if expires is None or _aware(expires) < now():
            raise LeaseConflict(f"the lease on trial {trial_id} expired")
        return row

    def heartbeat(self, trial_id: int, lease_id: str, agent: str, lease_s: float) -> datetime:
        with self._session() as session:
            row = self._held(session, trial_id, lease_id, agent)
            row.lease_expires_at = now() + timedelta(seconds=lease_s)
            return row.lease_expires_at

    def release(self, trial_id: int, lease_id: str, agent: str) -> None:
        """Hand a leased trial back, so another agent can run it at once."""
        with self._session() as session:
            row = self._held(session, trial_id, lease_id, agent)
            row.status = "pending"
            row.lease_id = None
            row.lease_expires_at = None
            row.status_history = [*row.status_history, ["released", now().isoformat(), agent]]

    def finish(self, trial_id: int, lease_id: str, agent: str, result: Trial) -> Trial:
        """Record a leased trial's result: whole, once, and only by its lease holder."""
        _check_numbers(result)
        with self._session() as session:
            row = self._held(session, trial_id, lease_id, agent)
            _check_times(row, result)
            if result.config:
                # A baseline as the target runs it: the agent read the values it ran.
                if not row.is_baseline or set(result.config) != set(row.config):
                    raise BadReport(
                        f"trial {row.number}: only a baseline reports the config it ran, "
                        "over the knobs it was leased with"
                    )
                row.config = dict(result.config)
            row.status = result.status
            row.objective = result.objective
            row.started_at = result.started_at
            row.finished_at = result.finished_at
            row.timings = result.timings
            row.not_applied = result.not_applied
            row.error = result.error
            row.log_excerpt = result.log_excerpt
            row.status_history = [*row.status_history, *[list(s) for s in result.status_history]]
            row.lease_id = None
            row.lease_expires_at = None
            row.metrics = [MetricRow(name=k, value=float(v)) for k, v in result.metrics.items()]
            session.flush()
            return _trial(row)

    # -- agents -----------------------------------------------------------------------
    def add_agent(self, name: str) -> str:
        """Register an agent; returns its token, which is shown once and stored only hashed."""
        check_name(name, "agent")
        token = secrets.token_urlsafe(32)
        try:
            with self._session() as session:
                session.add(AgentRow(name=name, token_hash=token_hash(token), created_at=now()))
        except IntegrityError:
            raise StoreError(f"agent {name!r} already exists") from None
        return token

    def agent_for_token(self, token: str) -> str | None:
        """The agent holding ``token``; its last use is written at most once a minute, so
        that a busy agent's every heartbeat is not a write."""
        with self._session() as session:
            row = session.scalar(select(AgentRow).where(AgentRow.token_hash == token_hash(token)))
            if row is None:
                return None
            at = now()
            seen = row.last_seen_at and _aware(row.last_seen_at)
            if seen is None or at - seen >= timedelta(seconds=SEEN_EVERY_S):
                row.last_seen_at = at
            return row.name

    def rotate_agent(self, name: str) -> str:
        """A new token for agent ``name``; the old one stops working at once."""
        token = secrets.token_urlsafe(32)
        with self._session() as session:
            row = session.scalar(select(AgentRow).where(AgentRow.name == name))
            if row is None:
                raise StoreError(f"no agent {name!r}")
            row.token_hash = token_hash(token)
        return token

    def revoke_agent(self, name: str) -> None:
        """Forget agent ``name``: its token is refused from now on. Its recorded trials
        keep its name; a trial it holds goes back to the queue when the lease expires."""
        with self._session() as session:
            row = session.scalar(select(AgentRow).where(AgentRow.name == name))
            if row is None:
                raise StoreError(f"no agent {name!r}")
            session.delete(row)

    def agents(self) -> list[AgentInfo]:
        with self._session() as session:
            rows = session.scalars(select(AgentRow).order_by(AgentRow.id))
            return [
                AgentInfo(
                    r.name, _aware(r.created_at), r.last_seen_at and _aware(r.last_seen_at), r.host
                )
                for r in rows
            ]


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

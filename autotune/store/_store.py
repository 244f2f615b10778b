"""The results store: every experiment, trial, config, metric and failure.

SQLite is the embedded default; any SQLAlchemy URL works, PostgreSQL included.
The schema is managed by Alembic; a store made by an older autotune is never
touched silently, the error names the upgrade command (as Optuna does).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from autotune.domain import FINISHED, Trial, now
from autotune.store._agents import _Agents
from autotune.store._leases import _Leases
from autotune.store._models import (
    AnalysisRow,
    ExperimentRow,
    MetricRow,
    SpecRow,
    SystemRow,
    TrialRow,
    WorkloadRow,
)
from autotune.store._types import (
    Analysis,
    Experiment,
    LeaseConflict,
    StoreError,
    _aware,
    _check_numbers,
    _experiment,
    _maybe,
    _trial,
    check_name,
)


class Store(_Leases, _Agents):
    """Repository over the results tables; returns plain dataclasses, not ORM rows."""

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

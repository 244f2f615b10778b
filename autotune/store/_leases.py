"""The lease protocol: proposals, leases, heartbeats, releases and reports, each one
transaction, so that no trial is run twice or recorded twice."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from autotune.domain import Proposal, Trial, now
from autotune.store._engine import _Base
from autotune.store._models import (
    AgentRow,
    ExperimentRow,
    MetricRow,
    TrialRow,
)
from autotune.store._types import (
    BadReport,
    Experiment,
    LeaseConflict,
    _aware,
    _check_fidelity,
    _check_numbers,
    _check_phase,
    _check_times,
    _experiment,
    _trial,
)


class _Leases(_Base):
    """The Store's lease protocol (see the module docstring)."""

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

"""Agent tokens: registered once, stored only hashed, rotated and revoked."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from autotune.domain import now
from autotune.store._engine import _Base
from autotune.store._models import (
    AgentRow,
)
from autotune.store._types import (
    SEEN_EVERY_S,
    AgentInfo,
    StoreError,
    _aware,
    check_name,
    token_hash,
)


class _Agents(_Base):
    """The Store's agent registry: names, hashed tokens, last use and host."""

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

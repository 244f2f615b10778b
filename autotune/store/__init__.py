"""The results store: SQLAlchemy models, repository and Alembic migrations."""

from autotune.store._store import (
    FINISHED,
    Analysis,
    Experiment,
    LeaseConflict,
    Proposal,
    Store,
    StoreError,
    Trial,
    default_url,
    now,
    token_hash,
    upgrade,
)

__all__ = [
    "FINISHED",
    "Analysis",
    "Experiment",
    "LeaseConflict",
    "Proposal",
    "Store",
    "StoreError",
    "Trial",
    "default_url",
    "now",
    "token_hash",
    "upgrade",
]

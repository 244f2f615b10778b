"""The results store: SQLAlchemy models, repository and Alembic migrations."""

from autotune.store._store import (
    FINISHED,
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

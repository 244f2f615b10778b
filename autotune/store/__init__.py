"""The results store: SQLAlchemy models, repository and Alembic migrations."""

from autotune.store._store import (
    Experiment,
    Store,
    StoreError,
    Trial,
    default_url,
    now,
    upgrade,
)

__all__ = ["Experiment", "Store", "StoreError", "Trial", "default_url", "now", "upgrade"]

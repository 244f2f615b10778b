"""The results store: SQLAlchemy models, repository and Alembic migrations."""

from autotune.domain import FINISHED, PHASES, Proposal, Trial, now
from autotune.store._engine import default_url, upgrade
from autotune.store._exchange import export_experiment, import_experiment, write_export
from autotune.store._reading import read_export
from autotune.store._store import Store
from autotune.store._types import (
    NAME_PATTERN,
    NAME_RULE,
    SEEN_EVERY_S,
    AgentInfo,
    Analysis,
    BadReport,
    Experiment,
    LeaseConflict,
    StoreError,
    check_name,
    token_hash,
)

__all__ = [
    "FINISHED",
    "NAME_PATTERN",
    "NAME_RULE",
    "PHASES",
    "SEEN_EVERY_S",
    "AgentInfo",
    "Analysis",
    "BadReport",
    "Experiment",
    "LeaseConflict",
    "Proposal",
    "Store",
    "StoreError",
    "Trial",
    "check_name",
    "default_url",
    "export_experiment",
    "import_experiment",
    "now",
    "read_export",
    "token_hash",
    "upgrade",
    "write_export",
]

"""The results store: SQLAlchemy models, repository and Alembic migrations."""

from autotune.domain import FINISHED, PHASES, Proposal, Trial, now
from autotune.store._exchange import (
    export_experiment,
    import_experiment,
    read_export,
    write_export,
)
from autotune.store._store import (
    NAME_PATTERN,
    NAME_RULE,
    SEEN_EVERY_S,
    AgentInfo,
    Analysis,
    BadReport,
    Experiment,
    LeaseConflict,
    Store,
    StoreError,
    check_name,
    default_url,
    token_hash,
    upgrade,
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

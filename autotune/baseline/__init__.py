"""Rule-based baselines: what a DBA would set by formula, to compare tuned configs against."""

from autotune.baseline.pgtune import (
    DB_TYPES,
    STORAGES,
    PgtuneConfig,
    PgtuneInput,
    pgtune_config,
    pgtune_settings,
)

__all__ = [
    "DB_TYPES",
    "STORAGES",
    "PgtuneConfig",
    "PgtuneInput",
    "pgtune_config",
    "pgtune_settings",
]

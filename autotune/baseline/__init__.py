"""Rule-based baselines: what a DBA would set by formula, to compare tuned configs against."""

from autotune.baseline.pgtune import (
    DB_SIZES,
    DB_TYPES,
    PG_VERSIONS,
    STORAGES,
    PgtuneConfig,
    PgtuneInput,
    pgtune_config,
    pgtune_settings,
    pgtune_warnings,
)

__all__ = [
    "DB_SIZES",
    "DB_TYPES",
    "PG_VERSIONS",
    "STORAGES",
    "PgtuneConfig",
    "PgtuneInput",
    "pgtune_config",
    "pgtune_settings",
    "pgtune_warnings",
]

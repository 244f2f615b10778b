"""PostgreSQL: managed sandbox or an existing server."""

from autotune.spec import Spec
from autotune.systems._registry import Target, register, register_formats, register_gauges
from autotune.systems.postgres._datasets import (
    Dataset,
    datasets_root,
    list_datasets,
    remove_dataset,
)
from autotune.systems.postgres._dsn import public_dsn
from autotune.systems.postgres._import import fetch_settings, import_settings
from autotune.systems.postgres._render import FORMATS, quote_literal
from autotune.systems.postgres._sandbox import Sandbox, find_bindir, find_program, sweep_stale
from autotune.systems.postgres._system import PostgresSystem


def _make(spec: Spec, target: Target) -> PostgresSystem:
    return PostgresSystem(
        spec,
        sandbox=Sandbox() if target.managed else None,
        dsn=target.dsn,
        restart_command=target.restart_command,
        data_dir=target.data_dir,
    )


register("postgres", _make)
register_formats("postgres", FORMATS)
register_gauges("postgres", PostgresSystem.metric_gauges)

__all__ = [
    "Dataset",
    "PostgresSystem",
    "Sandbox",
    "datasets_root",
    "fetch_settings",
    "find_bindir",
    "find_program",
    "import_settings",
    "list_datasets",
    "public_dsn",
    "quote_literal",
    "remove_dataset",
    "sweep_stale",
]

"""PostgreSQL: managed sandbox or an existing server."""

from autotune.spec import Spec
from autotune.systems._registry import Target, register
from autotune.systems.postgres._dsn import public_dsn
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

__all__ = [
    "PostgresSystem",
    "Sandbox",
    "find_bindir",
    "find_program",
    "public_dsn",
    "sweep_stale",
]

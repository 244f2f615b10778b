"""PostgreSQL: managed sandbox or an existing server."""

from autotune.systems.postgres._sandbox import Sandbox, find_bindir, find_program, sweep_stale
from autotune.systems.postgres._system import PostgresSystem

__all__ = ["PostgresSystem", "Sandbox", "find_bindir", "find_program", "sweep_stale"]

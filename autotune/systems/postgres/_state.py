"""The same starting state for every trial: the loaded data kept between sessions, a
pristine clone to reset to before each trial, and a checkpoint, no autovacuum and a
warm cache before each measurement. Only a managed sandbox's data is ever copied,
dropped or replaced; an existing server's database is its owner's."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from autotune.systems._base import SystemError_
from autotune.systems.postgres._datasets import dataset_path, save_copy
from autotune.systems.postgres._sandbox import Sandbox

# In a managed sandbox the workload's data lives in its own database, so that it can be
# replaced by a copy of itself as loaded (``reset_data``) while autotune is connected to
# the maintenance database.
DATA_DB = "autotune"
PRISTINE_DB = "autotune_pristine"
SETTLE_TIMEOUT_S = 120.0  # at most this long waiting for autovacuum workers to finish


class _DataState:
    """A PostgresSystem's data: kept between sessions, reset to its loaded state, and
    settled before a measurement (see the module docstring)."""

    sandbox: Sandbox | None
    timeout_s: float

    def connect(
        self, timeout_s: float = 10, *, maintenance: bool = False
    ) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def _take_stock(self) -> None:
        raise NotImplementedError

    # -- datasets kept between sessions (managed sandboxes only) ------------------------------
    def _dataset(self, key: str) -> Path | None:
        if self.sandbox is None:
            return None
        major = (self.sandbox.data_dir / "PG_VERSION").read_text().strip()
        return dataset_path(key, major)

    def restore_dataset(self, key: str) -> bool:
        """The sandbox's data replaced by the kept copy ``key``, if there is one."""
        path = self._dataset(key)
        if path is None or not (path / "PG_VERSION").exists():
            return False
        assert self.sandbox is not None
        self.sandbox.replace_data(path, self.timeout_s)
        self._take_stock()
        return True

    def save_dataset(self, key: str) -> bool:
        """Keep the sandbox's data as it is now, with the server stopped for the copy."""
        path = self._dataset(key)
        if path is None or path.exists():
            return False
        assert self.sandbox is not None
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("CHECKPOINT")
        self.sandbox.stop()
        try:
            saved = save_copy(self.sandbox.data_dir, path)
        finally:
            self.sandbox.start(self.timeout_s)
        return saved

    # -- the data's state ------------------------------------------------------------------
    def can_reset(self) -> bool:
        """Whether ``reset_data`` can bring the data back: only in a managed sandbox,
        whose databases are autotune's own. An existing server's database is its
        owner's, and autotune never copies, drops or replaces it."""
        return self.sandbox is not None

    def keep_pristine(self) -> None:
        """Keep a copy of the data database as it is now (loaded, vacuumed, checkpointed),
        for ``reset_data``. The copy is a file-level clone (``STRATEGY FILE_COPY``), so
        it is the same pages, visibility map and free space as the original."""
        if not self.can_reset():
            raise SystemError_("only a managed sandbox's data can be reset")
        with self.connect(maintenance=True) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(PRISTINE_DB)))
            cur.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(PRISTINE_DB), sql.Identifier(DATA_DB)
                )
            )
            # Nobody may connect to it: a connection would block the next clone.
            cur.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
                    sql.Identifier(PRISTINE_DB)
                )
            )

    def reset_data(self) -> None:
        """Replace the data database by a fresh clone of the pristine copy: the trial
        starts from the freshly loaded data (no dead tuples, no bloat, no history
        rows, fresh statistics), whatever earlier trials wrote."""
        if not self.can_reset():
            raise SystemError_("only a managed sandbox's data can be reset")
        with self.connect(maintenance=True) as conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATA_DB))
            )
            cur.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(DATA_DB), sql.Identifier(PRISTINE_DB)
                )
            )
        # A new database starts with empty statistics: its n_live_tup would read 0. A
        # VACUUM of the frozen, all-visible copy changes no page; it only tells the
        # statistics what is there again.
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("VACUUM")

    def settle(self, prewarm: bool = True) -> dict[str, float]:
        """Quiet the server before a measurement: a checkpoint (so none is due from
        earlier writes), no autovacuum worker running, and, with ``prewarm``, every
        user table and index read into shared buffers by pg_prewarm where the
        extension is installed. Returns what it did: seconds waited for
        autovacuum, and blocks prewarmed."""
        out = {"autovacuum_wait_s": 0.0, "prewarmed_blocks": 0.0}
        with self.connect() as conn, conn.cursor() as cur:
            # An existing server's non-superuser may not: its checkpoints stay its own.
            with contextlib.suppress(psycopg2.errors.InsufficientPrivilege):
                cur.execute("CHECKPOINT")
            t0 = time.monotonic()
            while time.monotonic() - t0 < SETTLE_TIMEOUT_S:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
                )
                row = cur.fetchone()
                if not row or not row[0]:
                    break
                time.sleep(0.2)
            out["autovacuum_wait_s"] = time.monotonic() - t0
            if prewarm:
                cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_prewarm'")
                if cur.fetchone():
                    cur.execute(
                        "SELECT coalesce(sum(pg_prewarm(c.oid::regclass)), 0)"
                        " FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                        " WHERE c.relkind IN ('r', 'i', 'm', 't') AND c.relpersistence = 'p'"
                        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                    )
                    row = cur.fetchone()
                    out["prewarmed_blocks"] = float(row[0]) if row else 0.0
        return out

    def enable_prewarm(self) -> None:
        """Install pg_prewarm in the data database: only in a sandbox, which is ours."""
        if self.sandbox is None:
            return
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")

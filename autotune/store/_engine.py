"""The store's engine and schema: URLs, SQLite's settings, Alembic migrations and the
version check made when a store is opened."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from autotune.store._types import StoreError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def default_url() -> str:
    env = os.environ.get("AUTOTUNE_STORE")
    if env:
        return env
    return f"sqlite:///{Path.cwd() / '.autotune' / 'autotune.db'}"


def _alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "<unparseable URL>"


def _make_engine(url: str, foreign_keys: bool = True) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            # SQLAlchemy 2.1 defaults to psycopg 3; psycopg2 is what autotune ships with.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        engine = create_engine(parsed)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot open store {_hide_password(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()
            dbapi_conn.isolation_level = None  # SQLAlchemy, not the driver, begins transactions

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            # SQLite ignores FOR UPDATE; taking the write lock at BEGIN makes each
            # read-then-update (lease_next, _held) atomic across threads and processes.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade(url: str) -> tuple[str | None, str]:
    """Bring a store to the current schema; returns (old revision, new revision)."""
    # SQLite migrations rebuild tables (drop and copy); with foreign keys on, dropping
    # the old trials table would cascade into its metrics.
    engine = _make_engine(url, foreign_keys=False)
    cfg = _alembic_config(url)
    with engine.begin() as conn:
        old = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    engine.dispose()
    return old, ScriptDirectory.from_config(cfg).get_current_head() or ""


class _Base:
    """The engine and sessions every part of the Store shares; the schema checked on open."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine = _make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._check_schema()

    def _check_schema(self) -> None:
        cfg = _alembic_config(self.url)
        script = ScriptDirectory.from_config(cfg)
        head = script.get_current_head()
        try:
            with self.engine.connect() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
                tables = set(inspect(conn).get_table_names())
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store {self.safe_url}: {exc}") from None
        if current == head:
            return
        if current is None and not tables & {"experiments", "trials"}:
            upgrade(self.url)  # a new, empty store
            return
        if current is None:
            raise StoreError(
                f"store {self.safe_url} has tables but no autotune schema version: it was not "
                "made by autotune; give --store a new database"
            )
        known = {rev.revision for rev in script.walk_revisions()}
        if current in known:
            raise StoreError(
                f"store {self.safe_url} uses an older schema ({current}; "
                f"this autotune needs {head}); back it up, then run: "
                f"autotune store upgrade --store {self.safe_url}"
            )
        raise StoreError(
            f"store {self.safe_url} was made by a newer autotune (schema {current}); "
            "upgrade autotune to read it"
        )

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

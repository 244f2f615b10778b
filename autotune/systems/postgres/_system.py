"""PostgreSQL as a tunable system: ALTER SYSTEM, reload or restart, read back, roll back.

Values reach the server only after ``Knob.validate`` and ``Knob.format``, and
go into ALTER SYSTEM as a quoted literal with the name as a quoted identifier
(psycopg2.sql), so nothing from a spec, a user or an optimiser is pasted into
SQL. See the PostgreSQL docs, "ALTER SYSTEM" and "pg_settings".
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from autotune.spec import APPLY_RANK, Config, Knob, KnobValueError, Spec, Unit, Value
from autotune.systems._base import ApplyReport, ConfigFailed, System, SystemError_
from autotune.systems.postgres._metrics import PG_GAUGES, pg_snapshot
from autotune.systems.postgres._sandbox import Sandbox
from autotune.systems.postgres._state import DATA_DB, _DataState

AUTO_CONF = "postgresql.auto.conf"
_ENV_KEYS = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
}


class PostgresSystem(_DataState, System):
    """A managed sandbox (the default) or an existing server reached by ``dsn``."""

    metric_gauges = System.metric_gauges | PG_GAUGES

    def __init__(
        self,
        spec: Spec,
        *,
        sandbox: Sandbox | None = None,
        dsn: str | None = None,
        restart_command: str | None = None,
        data_dir: Path | None = None,
        timeout_s: float = 60,
    ) -> None:
        if (sandbox is None) == (dsn is None):
            raise ValueError("give exactly one of sandbox or dsn")
        self.spec = spec
        self.sandbox = sandbox
        self.dsn = dsn
        self.restart_command = shlex.split(restart_command) if restart_command else None
        self.data_dir = data_dir
        self.timeout_s = timeout_s
        self._original: dict[str, str] = {}  # knob -> value in postgresql.auto.conf at start
        self._original_text: str | None = None
        self._current: dict[str, str] = {}  # knob -> formatted value we last set
        self._good: dict[str, str] = {}
        self._good_text: str | None = None
        self._log_offset = 0
        self._touched: set[str] = set()
        self._found: Config = {}  # the knobs' values at the first start, for current()

    # -- connection -----------------------------------------------------------------
    def conn_params(self) -> dict[str, str]:
        """Where the workload's data is: a sandbox's data database, or the DSN's."""
        if self.sandbox is not None:
            return {**self.sandbox.conn_params(), "dbname": DATA_DB}
        assert self.dsn is not None
        return dict(psycopg2.extensions.parse_dsn(self.dsn))

    def client_env(self) -> dict[str, str]:
        """libpq environment for client programs such as pgbench: no DSN on a command line."""
        return {_ENV_KEYS[k]: v for k, v in self.conn_params().items() if k in _ENV_KEYS}

    @contextlib.contextmanager
    def connect(self, timeout_s: float = 10, *, maintenance: bool = False) -> Iterator[Any]:
        """A connection to the data database; ``maintenance``: to a sandbox's ``postgres``
        database instead, for creating and dropping the data database."""
        where = self.sandbox.conn_params() if maintenance and self.sandbox else self.conn_params()
        params: dict[str, Any] = {**where, "connect_timeout": max(2, int(timeout_s))}
        conn = psycopg2.connect(**params)
        conn.autocommit = True  # ALTER SYSTEM cannot run inside a transaction block
        try:
            yield conn
        finally:
            conn.close()

    def healthy(self) -> bool:
        try:
            with self.connect(timeout_s=5) as conn, conn.cursor() as cur:
                cur.execute("SET statement_timeout = 5000")
                cur.execute("SELECT 1")
                return bool(cur.fetchone() == (1,))
        except psycopg2.Error:
            return False

    def _auto_conf(self) -> Path | None:
        if self.sandbox is not None:
            return self.sandbox.data_dir / AUTO_CONF
        if self.data_dir is not None:
            return self.data_dir / AUTO_CONF
        return None

    def _read_auto_conf(self) -> str | None:
        path = self._auto_conf()
        try:
            return path.read_text() if path is not None else None
        except OSError:
            return None

    def log_excerpt(self) -> str:
        if self.sandbox is None:
            return ""
        return self.sandbox.log_since(self._log_offset)

    def metrics_snapshot(self) -> dict[str, float]:
        """The server's statistics views (``pg.*``) plus the host's (``host.*``): one
        short connection, a handful of constant queries."""
        with self.connect(timeout_s=5) as conn:
            pg = pg_snapshot(conn)
        return {**super().metrics_snapshot(), **pg}

    # -- lifecycle --------------------------------------------------------------------
    def restartable(self) -> bool:
        """Restart-class knobs can be tried: a change that keeps the server from starting
        can be undone, which on an existing server takes its postgresql.auto.conf."""
        if self.sandbox is not None:
            return True
        return self.restart_command is not None and self.data_dir is not None

    def twin(self) -> PostgresSystem | None:
        """Another managed sandbox beside this one; an existing server has no twin."""
        if self.sandbox is None:
            return None
        box = Sandbox(root=self.sandbox.root, bindir=self.sandbox.bindir)
        return PostgresSystem(self.spec, sandbox=box, timeout_s=self.timeout_s)

    def start(self) -> None:
        if self.sandbox is not None:
            self.sandbox.create()
            self.sandbox.start(self.timeout_s)
            with self.connect(maintenance=True) as conn, conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATA_DB)))
        self._take_stock()

    def _take_stock(self) -> None:
        """What the server runs with now: the originals to restore, the values in force."""
        if not self.healthy():
            raise SystemError_(f"cannot connect to PostgreSQL at {self._where()}")
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT name, setting FROM pg_file_settings"
                " WHERE sourcefile LIKE %s AND error IS NULL ORDER BY seqno",
                ("%" + AUTO_CONF,),
            )
            self._original = {name: setting for name, setting in cur.fetchall()}
        self._original_text = self._read_auto_conf()
        if self.sandbox is None and self.data_dir is not None:
            self._check_data_dir()
        self._good_text = self._original_text
        running = self._running()
        if not self._found:
            self._found = running  # before any change of ours: what the owner runs
        self._current = {n: self.spec.knobs[n].format(v) for n, v in running.items()}
        self._good = dict(self._current)

    def _check_data_dir(self) -> None:
        """--data-dir must be this server's, and its postgresql.auto.conf writable: the
        rollback of a server that no longer starts depends on it."""
        assert self.data_dir is not None
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            row = cur.fetchone()
        runs_from = Path(str(row[0])) if row else None
        path = self.data_dir / AUTO_CONF
        if runs_from is not None and runs_from.resolve() != self.data_dir.resolve():
            raise SystemError_(
                f"--data-dir {self.data_dir} is not the server's data directory "
                f"(it runs from {runs_from})"
            )
        if self._original_text is None or not os.access(path, os.W_OK):
            raise SystemError_(
                f"--data-dir {self.data_dir}: cannot read and write {AUTO_CONF} there, "
                "so a change could not be undone while the server is down"
            )

    def _running_values(self) -> dict[str, str]:
        """The spec's knobs as the server runs them now, so unchanged ones are not re-set."""
        return {name: self.spec.knobs[name].format(v) for name, v in self._running().items()}

    def _running(self) -> Config:
        """The spec's knobs as the server runs them now, as config values.

        A knob at its compiled-in default whose spec default is a special value (-1:
        derived from other settings) keeps the special value: pg_settings shows what the
        server derived from it, which is not what it runs with today."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT name, setting, unit, source FROM pg_settings WHERE name = ANY(%s)",
                (list(self.spec.knobs),),
            )
            rows = cur.fetchall()
        defaults = self.spec.defaults()
        out: Config = {}
        for name, setting, unit, source in rows:
            knob = self.spec.knobs[name]
            if source in ("default", "override") and defaults.get(name) in knob.special:
                out[name] = defaults[name]
                continue
            try:
                if knob.numeric and unit:
                    setting = f"{float(setting) * Unit.parse(unit).base / knob.unit.base:.10g}"
                out[name] = knob.validate(setting)
            except (KnobValueError, ValueError):
                continue  # outside the spec's range: leave it to the first apply
        return out

    def current(self) -> Config | None:
        """An existing server's settings as ``start`` found them; None for a sandbox,
        which runs the spec's defaults."""
        return None if self.sandbox is not None else dict(self._found)

    def _where(self) -> str:
        params = self.conn_params()
        return f"host={params.get('host', '')} port={params.get('port', '')}"

    def stop(self) -> None:
        if self.sandbox is not None:
            self.sandbox.destroy()

    # -- applying -----------------------------------------------------------------------
    def _set(self, cur: Any, name: str, value: str | None) -> None:
        if value is None:
            cur.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
        else:
            cur.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
            )

    def format_config(self, config: Config) -> dict[str, str]:
        """Validate every value against the spec and render it as PostgreSQL reads it."""
        out = {}
        for name, value in config.items():
            knob = self.spec.knobs.get(name)
            if knob is None:
                raise SystemError_(f"knob {name!r} is not in spec {self.spec.path}")
            out[name] = knob.format(knob.validate(value))
        return out

    def apply(self, config: Config) -> ApplyReport:
        wanted = self.format_config(config)
        changed = {n: v for n, v in wanted.items() if self._current.get(n) != v}
        report = ApplyReport()
        needed = max((APPLY_RANK[self.spec.knobs[n].apply] for n in changed), default=0)
        report.action = ["online", "reload", "restart"][needed]
        if needed == 2 and not self.restartable():
            raise SystemError_(
                "restart-class knobs need --restart-command and --data-dir on an existing "
                "server: autotune must be able to undo a change while the server is down"
            )
        t0 = time.monotonic()
        try:
            with self.connect() as conn, conn.cursor() as cur:
                for name, value in changed.items():
                    self._set(cur, name, value)
                    self._touched.add(name)
                    self._current[name] = value
        except psycopg2.Error as exc:
            self.rollback()
            raise ConfigFailed(f"PostgreSQL refused the config: {exc.pgerror or exc}") from None
        report.apply_s = time.monotonic() - t0
        t0 = time.monotonic()
        self._activate(needed)
        report.restart_s = time.monotonic() - t0
        report.not_applied = self._read_back(wanted, wait=needed == 1)
        return report

    def _activate(self, needed: int) -> None:
        """Reload or restart; on a restart that fails, roll back and raise ConfigFailed."""
        if needed == 1:
            with self.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_reload_conf()")
        elif needed == 2:
            try:
                self._restart()
            except SystemError_ as exc:
                excerpt = exc.log_excerpt or self.log_excerpt()
                self.rollback()
                raise ConfigFailed(f"{exc} with this config; rolled back", excerpt) from None
        if not self.healthy():
            excerpt = self.log_excerpt()
            self.rollback()
            raise ConfigFailed(
                f"PostgreSQL did not answer within {self.timeout_s:.0f}s; rolled back", excerpt
            )

    def _restart(self) -> None:
        if self.sandbox is not None:
            self._log_offset = self.sandbox.log_size()
            self.sandbox.restart(self.timeout_s)
            return
        assert self.restart_command is not None
        try:
            result = subprocess.run(
                self.restart_command,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SystemError_("the restart command timed out") from None
        if result.returncode != 0:
            raise SystemError_(
                f"the restart command exited {result.returncode}", result.stderr[-2000:]
            )
        deadline = time.monotonic() + self.timeout_s
        while not self.healthy():
            if time.monotonic() > deadline:
                raise SystemError_("PostgreSQL did not come back after the restart command")
            time.sleep(0.5)

    def _read_back(self, wanted: dict[str, str], wait: bool) -> dict[str, str]:
        """Compare pg_settings with what we set; after a reload, give it a moment."""
        deadline = time.monotonic() + (3.0 if wait else 0.0)
        while True:
            with self.connect() as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT name, setting, unit, pending_restart FROM pg_settings"
                    " WHERE name = ANY(%s)",
                    (list(wanted),),
                )
                rows = {r[0]: r[1:] for r in cur.fetchall()}
            problems = {}
            for name, text in wanted.items():
                knob = self.spec.knobs[name]
                if name not in rows:
                    problems[name] = "not a setting of this server"
                    continue
                setting, unit, pending = rows[name]
                if pending:
                    problems[name] = f"pending restart (server has {setting})"
                elif not _same(knob, knob.validate(text), setting, unit):
                    problems[name] = f"wanted {text}, server has {setting}{unit or ''}"
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(0.2)

    def mark_good(self) -> None:
        self._good = dict(self._current)
        self._good_text = self._read_auto_conf()

    def rollback(self) -> None:
        """Back to the last good config: through SQL if the server answers, else the file."""
        target = {n: self._good.get(n, self._original.get(n)) for n in self._touched}
        restart_needed = any(
            self.spec.knobs[n].apply == "restart" and self._current.get(n) != target[n]
            for n in target
        )
        if self.healthy():
            with self.connect() as conn, conn.cursor() as cur:
                for name, value in target.items():
                    self._set(cur, name, value)
                if not restart_needed:
                    cur.execute("SELECT pg_reload_conf()")
        else:
            path = self._auto_conf()
            if path is None or self._good_text is None:
                raise SystemError_(
                    "PostgreSQL is down and autotune cannot reach its postgresql.auto.conf; "
                    "pass --data-dir to let autotune roll back, or fix the server by hand"
                )
            path.write_text(self._good_text)
            restart_needed = True
        self._current = {n: v for n, v in target.items() if v is not None}
        if restart_needed:
            self._restart()

    def restore(self, config: Config | None = None) -> None:
        """Leave ``config`` applied, or put back what postgresql.auto.conf held at start."""
        if self.sandbox is not None and config is None:
            return  # the sandbox is removed next; restoring it would only cost a restart
        if config is not None:
            self.apply(config)
            return
        self._good = {n: v for n, v in self._original.items() if n in self._touched}
        self._good_text = self._original_text
        self.rollback()
        self._touched.clear()


def _same(knob: Knob, value: Value, setting: str, unit: str | None) -> bool:
    """Whether pg_settings' ``setting`` (in ``unit``) equals our validated value."""
    if value in knob.special:
        return True  # -1 and friends show the value the server derived from them
    if knob.type == "bool":
        return (setting == "on") == bool(value)
    if knob.type == "enum":
        return setting == value
    try:
        server_unit = Unit.parse(unit)
        ours = float(value) * knob.unit.base
        theirs = float(setting) * server_unit.base
    except (ValueError, TypeError):
        return False
    return abs(ours - theirs) <= 1e-6 * max(1.0, abs(ours))

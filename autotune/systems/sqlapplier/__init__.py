"""The generic ``sql`` applier: knobs set by statement templates on an existing server.

For a system whose settings are changed with SQL, a spec names the
statements and no Python is written for it::

    applier:
      kind: sql
      set: "ALTER SYSTEM SET {name} = {value}"
      reset: "ALTER SYSTEM RESET {name}"     # optional: how to undo a knob never set before
      reload: "SELECT pg_reload_conf()"       # optional: run after changing reload-class knobs
      show: "SELECT current_setting({name_literal})"   # how to read a knob's value back

``{name}`` is the knob's name as an identifier, ``{name_literal}`` as a
string literal, ``{value}`` its validated value formatted by type as a
literal: psycopg2.sql composes them, so nothing is pasted into SQL text.
It reaches the server with the target's DSN over the PostgreSQL protocol
(PostgreSQL and wire-compatible servers); restart-class knobs need the
target's restart command.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from typing import Any

import psycopg2
from psycopg2 import sql

from autotune.spec import APPLY_RANK, Config, Spec
from autotune.systems._base import ApplyReport, ConfigFailed, System, SystemError_
from autotune.systems._registry import Target, register

FIELDS = frozenset({"kind", "set", "reset", "reload", "show"})


def _templates(spec: Spec) -> dict[str, str]:
    applier = spec.applier
    if not isinstance(applier, dict):
        raise SystemError_(f"spec {spec.path}: field 'applier': the sql applier needs a mapping")
    problems = [f"unknown field {k!r}" for k in sorted(set(applier) - FIELDS, key=str)]
    for key in ("set", "show"):
        if not isinstance(applier.get(key), str):
            problems.append(f"{key!r} must be a statement template")
    for key in ("reset", "reload"):
        if key in applier and not isinstance(applier[key], str):
            problems.append(f"{key!r} must be a statement template")
    if problems:
        raise SystemError_(f"spec {spec.path}: field 'applier': " + "; ".join(problems))
    return {k: str(v) for k, v in applier.items() if k != "kind"}


class SqlSystem(System):
    """An existing server whose knobs are changed by the spec's statement templates."""

    def __init__(
        self, spec: Spec, dsn: str, restart_command: str | None = None, timeout_s: float = 60
    ) -> None:
        self.spec = spec
        self.dsn = dsn
        self.templates = _templates(spec)
        self.restart_command = shlex.split(restart_command) if restart_command else None
        self.timeout_s = timeout_s
        self._original: dict[str, str] = {}
        self._current: dict[str, str] = {}
        self._good: dict[str, str] = {}

    def _statement(self, key: str, name: str, value: str | None = None) -> sql.Composed:
        return sql.SQL(self.templates[key]).format(
            name=sql.Identifier(name),
            name_literal=sql.Literal(name),
            value=sql.Literal(value),
        )

    def _run(self, statements: list[sql.Composable]) -> list[Any]:
        out = []
        conn = psycopg2.connect(self.dsn, connect_timeout=10)
        try:
            conn.autocommit = True  # ALTER SYSTEM cannot run in a transaction
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
                    out.append(cur.fetchone() if cur.description else None)
        finally:
            conn.close()
        return out

    def _read(self, names: list[str]) -> dict[str, str]:
        rows = self._run([self._statement("show", n) for n in names])
        return {n: str(r[0]) if r else "" for n, r in zip(names, rows, strict=True)}

    def healthy(self) -> bool:
        try:
            self._run([sql.SQL("SELECT 1")])
        except psycopg2.Error:
            return False
        return True

    def start(self) -> None:
        if not self.healthy():
            raise SystemError_("the --dsn server does not answer")
        self._original = self._read(list(self.spec.knobs))
        self._current = dict(self._original)
        self._good = dict(self._original)

    def restartable(self) -> bool:
        return self.restart_command is not None

    def apply(self, config: Config) -> ApplyReport:
        wanted = {}
        for name, value in config.items():
            knob = self.spec.knobs.get(name)
            if knob is None:
                raise SystemError_(f"knob {name!r} is not in spec {self.spec.path}")
            wanted[name] = knob.format(knob.validate(value))
        changed = {n: v for n, v in wanted.items() if self._current.get(n) != v}
        needed = max((APPLY_RANK[self.spec.knobs[n].apply] for n in changed), default=0)
        if needed == 2 and not self.restartable():
            raise SystemError_("restart-class knobs need --restart-command")
        report = ApplyReport(action=("online", "reload", "restart")[needed])
        t0 = time.monotonic()
        try:
            self._run([self._statement("set", n, v) for n, v in changed.items()])
        except psycopg2.Error as exc:
            self.rollback()
            raise ConfigFailed(f"the server refused the config: {exc}") from None
        self._current.update(changed)
        report.apply_s = time.monotonic() - t0
        t0 = time.monotonic()
        self._activate(needed)
        report.restart_s = time.monotonic() - t0
        report.not_applied = self._not_applied(wanted)
        return report

    def _activate(self, needed: int) -> None:
        if needed == 1 and "reload" in self.templates:
            self._run([sql.SQL(self.templates["reload"])])
        elif needed == 2:
            assert self.restart_command is not None
            done = subprocess.run(
                self.restart_command, capture_output=True, text=True, timeout=self.timeout_s
            )
            if done.returncode != 0:
                self.rollback()
                raise ConfigFailed(f"the restart command exited {done.returncode}", done.stderr)
        deadline = time.monotonic() + self.timeout_s
        while not self.healthy():
            if time.monotonic() > deadline:
                raise ConfigFailed("the server did not answer after applying the config")
            time.sleep(0.5)

    def _not_applied(self, wanted: dict[str, str]) -> dict[str, str]:
        """Knobs whose read-back value is not what was set (compared as the knob reads it)."""
        have = self._read(list(wanted))
        out = {}
        for name, text in wanted.items():
            knob = self.spec.knobs[name]
            try:
                same = knob.validate(have[name]) == knob.validate(text)
            except (ValueError, TypeError):
                same = have[name] == text
            if not same:
                out[name] = f"wanted {text}, server has {have[name]}"
        return out

    def mark_good(self) -> None:
        self._good = dict(self._current)

    def _put(self, target: dict[str, str]) -> None:
        changed = {n: v for n, v in target.items() if self._current.get(n) != v}
        if not changed:
            return
        self._run([self._statement("set", n, v) for n, v in changed.items()])
        self._current.update(changed)
        needed = max(APPLY_RANK[self.spec.knobs[n].apply] for n in changed)
        self._activate(needed if needed < 2 or self.restartable() else 1)

    def rollback(self) -> None:
        self._put(self._good)

    def restore(self, config: Config | None = None) -> None:
        if config is not None:
            self.apply(config)
            return
        touched = [n for n in self._current if self._current[n] != self._original.get(n)]
        if "reset" in self.templates and touched:
            self._run([self._statement("reset", n) for n in touched])
            self._current.update({n: self._original[n] for n in touched})
            self._activate(1)
        else:
            self._put(self._original)

    def stop(self) -> None:
        pass  # an existing server: nothing of ours to release


def _make(spec: Spec, target: Target) -> SqlSystem:
    if target.dsn is None:
        raise SystemError_(
            f"spec {spec.path}: the sql applier tunes an existing server; give --dsn"
        )
    return SqlSystem(spec, target.dsn, target.restart_command)


register("sql", _make)

__all__ = ["SqlSystem"]

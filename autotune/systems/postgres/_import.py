"""A knob spec generated from a live server's ``pg_settings``.

``spec_from_settings`` is a pure function from pg_settings rows to spec text
(``autotune knobs import postgres``); ``read_settings`` reads the rows from a
connection and ``fetch_settings`` from a managed sandbox or a DSN.

The mapping (see the PostgreSQL docs, "pg_settings" and chapter 20):

- ``vartype`` bool, integer, real, enum become knobs of that type; ``string``
  settings (paths, lists, names) are not knobs and are listed in a comment.
- ``unit`` is copied exactly, as in ``knobs/postgres.yaml``: PostgreSQL reports
  ``setting``, ``min_val``, ``max_val`` and ``boot_val`` in it, and the spec's
  bare numbers are in the native unit, so the numbers carry over unchanged.
  Whole-unit integers are written in the largest exact unit (16384 x 8kB ->
  ``128MB``), which the parser reads back to the same number.
- ``min_val``/``max_val`` are PostgreSQL's own limits, sentinels included
  (2147483647, 1.79769e+308): YAML numbers are not capped by the parser, only
  quantity strings are, so they are written as numbers.
- ``boot_val`` (the compiled-in default, not the server's current value) is the
  default.
- ``context``: postmaster -> restart; sighup, superuser, user, backend and
  superuser-backend -> reload (ALTER SYSTEM then a reload reaches new sessions);
  internal settings are read-only and skipped.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import re
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import yaml

from autotune.spec import Machine, SpecError, Unit, UnitError, format_quantity, parse_spec
from autotune.systems._base import SystemError_
from autotune.systems.postgres._import_rules import (
    APPLY_BY_CONTEXT,
    COLUMNS,
    KNOB_VARTYPES,
    NOT_TUNABLE,
    NOT_TUNABLE_CATEGORIES,
    NOT_TUNABLE_PREFIXES,
    TUNABLE_ANYWAY,
    UNSAFE,
)
from autotune.systems.postgres._sandbox import Sandbox


@dataclass(frozen=True)
class Setting:
    """One pg_settings row, the columns the import reads."""

    name: str
    vartype: str
    context: str
    unit: str | None = None
    category: str = ""
    short_desc: str = ""
    min_val: str | None = None
    max_val: str | None = None
    enumvals: tuple[str, ...] | None = None
    boot_val: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Setting:
        enumvals = row.get("enumvals")
        return cls(
            name=str(row["name"]),
            vartype=str(row["vartype"]),
            context=str(row["context"]),
            unit=row.get("unit") or None,
            category=str(row.get("category") or ""),
            short_desc=str(row.get("short_desc") or ""),
            min_val=row.get("min_val"),
            max_val=row.get("max_val"),
            enumvals=None if enumvals is None else tuple(str(v) for v in enumvals),
            boot_val=row.get("boot_val"),
        )


@dataclass(frozen=True)
class ImportedKnob:
    name: str
    category: str
    apply: str
    safety: str
    tunable: bool
    lines: tuple[str, ...]  # the knob's YAML, indented under ``knobs:``


@dataclass(frozen=True)
class Imported:
    """The generated spec and what went into it."""

    text: str
    knobs: tuple[ImportedKnob, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why

    @property
    def tunable(self) -> int:
        return sum(k.tunable for k in self.knobs)

    @property
    def fixed(self) -> int:
        return sum(not k.tunable for k in self.knobs)

    @property
    def unsafe(self) -> int:
        return sum(k.safety == "unsafe" for k in self.knobs)

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for why in self.skipped.values():
            key = why.split(":")[0]
            kinds[key] = kinds.get(key, 0) + 1
        skipped = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        return (
            f"{len(self.knobs)} knobs: {self.tunable} tunable, {self.fixed} tunable: false, "
            f"{self.unsafe} unsafe; skipped {len(self.skipped)}"
            + (f" ({skipped})" if skipped else "")
        )


def not_tunable_reason(setting: Setting) -> str | None:
    """Why a setting is ``tunable: false``, or None when it may be tuned."""
    if setting.name in NOT_TUNABLE:
        return NOT_TUNABLE[setting.name]
    if setting.name in TUNABLE_ANYWAY:
        return None
    for prefix, why in NOT_TUNABLE_PREFIXES.items():
        if setting.name.startswith(prefix):
            return why
    for category, why in NOT_TUNABLE_CATEGORIES.items():
        if setting.category == category or setting.category.startswith(category + " / "):
            return why
    return None


def _scalar(value: str) -> str:
    """A string as one line of YAML, quoted only when it must be."""
    text = yaml.safe_dump(
        " ".join(value.split()), default_flow_style=True, width=10**9, allow_unicode=True
    )
    return text.removesuffix("\n...\n").removesuffix("\n")


def _quoted(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def _real(value: float) -> str:
    """YAML's own spelling, which always reads back as a float: 2.0, 1.0e+16, 1.79769e+308."""
    return yaml.safe_dump(value).removesuffix("\n...\n").removesuffix("\n")


def _number(text: str | None, vartype: str) -> int | float:
    if text is None:
        raise ValueError("missing")
    if vartype == "integer":
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not finite")
    return value


def _knob_lines(s: Setting) -> list[str]:
    """The knob's fields; ValueError when the row does not make a knob."""
    lines = [f"type: {s.vartype}"]
    if s.vartype == "bool":
        if s.boot_val not in ("on", "off"):
            raise ValueError(f"boot_val {s.boot_val!r} is not on or off")
        lines.append(f"default: {'true' if s.boot_val == 'on' else 'false'}")
    elif s.vartype == "enum":
        if not s.enumvals:
            raise ValueError("no enumvals")
        lines.append(f"values: [{', '.join(_quoted(v) for v in s.enumvals)}]")
        lines.append(f"default: {_quoted(s.boot_val or '')}")
    else:
        try:
            unit = Unit.parse(s.unit)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
        lo, hi = _number(s.min_val, s.vartype), _number(s.max_val, s.vartype)
        default = _number(s.boot_val, s.vartype)
        special = [-1] if lo == -1 else []  # -1 is "off", "auto" or "unlimited" in every GUC

        def show(value: int | float) -> str:
            """128MB or 1min where that reads better; pg_settings' own number otherwise."""
            if isinstance(value, float):
                return _real(value)
            if value in special or unit.dimension is None:
                return str(value)
            quantity = format_quantity(value, unit)
            return quantity if len(quantity.rstrip("kMGTBusminhd")) <= 4 else str(value)

        if s.unit:
            lines.append(f"unit: {s.unit}")
        lines += [f"min: {show(lo)}", f"max: {show(hi)}", f"default: {show(default)}"]
        if special:
            lines.append("special: [-1]")
    return lines


def _check(name: str, lines: Sequence[str]) -> str | None:
    """The parser's first complaint about a one-knob spec, or None."""
    text = "system: check\nknobs:\n  " + name + ":\n" + "".join(f"    {ln}\n" for ln in lines)
    try:
        parse_spec(text, "<import>", Machine(memory_bytes=2**30, cpus=1))
    except SpecError as exc:
        return exc.problems[0].removeprefix("<import>: ").removeprefix(f"knob {name!r}: ")
    return None


def _group_name(category: str) -> list[str]:
    """``Resource Usage / Memory`` -> ``resource_usage``, ``resource_usage.memory``."""
    parts = [re.sub(r"[^a-z0-9]+", "_", p.lower()).strip("_") for p in category.split(" / ")]
    parts = [p for p in parts if p]
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _wrap(words: Iterable[str], prefix: str = "#   ", width: int = 96) -> list[str]:
    lines: list[str] = []
    current = prefix
    for word in words:
        if len(current) + len(word) + 1 > width and current.strip() != "#":
            lines.append(current.rstrip())
            current = prefix
        current += word + " "
    if current.strip() != "#":
        lines.append(current.rstrip())
    return lines


def import_settings(
    rows: Iterable[Mapping[str, Any]],
    *,
    server_version: str,
    source: str = "a PostgreSQL server",
    generated_at: datetime.datetime | None = None,
    system: str = "postgres",
) -> Imported:
    """Map pg_settings rows to a knob spec; see the module docstring for the mapping."""
    settings = sorted(
        (Setting.from_row(r) for r in rows), key=lambda s: (s.category, s.name.lower())
    )
    knobs: list[ImportedKnob] = []
    skipped: dict[str, str] = {}
    for s in settings:
        if s.context == "internal":
            skipped[s.name] = "internal: read-only"
            continue
        if s.vartype not in KNOB_VARTYPES:
            skipped[s.name] = f"{s.vartype}: not a knob type"
            continue
        apply = APPLY_BY_CONTEXT.get(s.context)
        if apply is None:
            skipped[s.name] = f"unknown context: {s.context!r}"
            continue
        try:
            lines = _knob_lines(s)
        except ValueError as exc:
            skipped[s.name] = f"unreadable: {exc}"
            continue
        safety = "unsafe" if s.name in UNSAFE else "safe"
        lines.append(f"apply: {apply}")
        lines.append(f"safety: {safety}" + (f"  # {UNSAFE[s.name]}" if safety == "unsafe" else ""))
        why = not_tunable_reason(s)
        if why is not None:
            lines.append(f"tunable: false  # {why}")
        if s.short_desc:
            lines.append(f"description: {_scalar(s.short_desc)}")
        problem = _check(s.name, lines)
        if problem is not None:
            skipped[s.name] = f"invalid: {problem}"
            continue
        knobs.append(ImportedKnob(s.name, s.category, apply, safety, why is None, tuple(lines)))

    imported = Imported("", tuple(knobs), skipped)
    when = (generated_at or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"# PostgreSQL {server_version} server parameters, imported from pg_settings.",
        "#",
        f"# Generated by `autotune knobs import postgres` on {when}",
        f"# from {source}.",
        f"# {imported.summary()}.",
        "#",
        "# - type: pg_settings.vartype; string settings are not knobs (listed at the end).",
        "# - unit: exactly pg_settings.unit, as in knobs/postgres.yaml; a bare number is in",
        "#   that unit, a quantity such as 128MB is converted to it.",
        "# - min, max: PostgreSQL's own limits (min_val, max_val), sentinels included. They",
        "#   include values that exhaust a host or keep the server from starting: narrow",
        "#   them (and consider scale: log) before tuning a server you care about.",
        "# - default: boot_val, the compiled-in default, not this server's current value.",
        "# - apply: context postmaster -> restart; sighup, superuser, user, backend and",
        "#   superuser-backend -> reload (ALTER SYSTEM and a reload reach new sessions).",
        "#   internal settings are read-only and left out.",
        "# - safety: unsafe where a value can lose or corrupt committed data.",
        "# - tunable: false where a setting does not change speed, or changes what the",
        "#   server does (logging, client defaults, security, files, replication).",
        "# - special: [-1] where -1 means off, auto or unlimited.",
        "# - groups: one per pg_settings category, tunable knobs only.",
        f"system: {system}",
        f"description: {_scalar(f'PostgreSQL {server_version} parameters from pg_settings')}",
        "applier: postgres",
        "knobs:",
    ]
    category = None
    for knob in knobs:
        if knob.category != category:
            category = knob.category
            out.append(f"  # --- {category or 'no category'} ---")
        out.append(f"  {knob.name}:")
        out.extend(f"    {line}" for line in knob.lines)
    groups: dict[str, list[str]] = {}
    for knob in knobs:
        if knob.tunable:
            for group in _group_name(knob.category):
                groups.setdefault(group, []).append(knob.name)
    for group in list(groups):  # a category with one subcategory: keep the precise name
        if any(g.startswith(group + ".") and groups[g] == groups[group] for g in groups):
            del groups[group]
    if groups:
        out.append("groups:")
        out.extend(f"  {group}: [{', '.join(names)}]" for group, names in sorted(groups.items()))
    for title, kind in (("string settings", "string"), ("internal settings", "internal")):
        names = sorted(
            (n for n, why in skipped.items() if why.startswith(kind + ":")), key=str.lower
        )
        if names:
            out += ["", f"# Not imported: {len(names)} {title}:", *_wrap(names)]
    others = {n: why for n, why in skipped.items() if not why.startswith(("string:", "internal:"))}
    if others:
        out += ["", f"# Not imported: {len(others)} other settings:"]
        out += [f"#   {name}: {why}" for name, why in sorted(others.items())]
    text = "\n".join(out) + "\n"
    return Imported(text, imported.knobs, skipped)


def spec_from_settings(
    rows: Iterable[Mapping[str, Any]],
    *,
    server_version: str,
    source: str = "a PostgreSQL server",
    generated_at: datetime.datetime | None = None,
) -> str:
    """The spec text for pg_settings ``rows``: ``import_settings(...).text``."""
    return import_settings(
        rows, server_version=server_version, source=source, generated_at=generated_at
    ).text


def read_settings(conn: Any) -> tuple[list[dict[str, Any]], str]:
    """pg_settings rows (the columns the import reads) and the server version."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM pg_settings ORDER BY name")  # noqa: S608
        rows = [dict(zip(COLUMNS, row, strict=True)) for row in cur.fetchall()]
        cur.execute("SHOW server_version")
        (version,) = cur.fetchone()
    return rows, str(version)


def _read(params: Mapping[str, str]) -> tuple[list[dict[str, Any]], str]:
    kwargs: dict[str, Any] = {"connect_timeout": "10", **params}
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        raise SystemError_(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
    try:
        return read_settings(conn)
    except psycopg2.Error as exc:
        raise SystemError_(f"cannot read pg_settings: {str(exc).strip()}") from None
    finally:
        conn.close()


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """A second Ctrl-C must not cut the sandbox's cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def fetch_settings(
    dsn: str | None = None, sandbox_root: Path | None = None
) -> tuple[list[dict[str, Any]], str, str]:
    """Rows, server version and a description of the source: the server at ``dsn``, or a
    managed sandbox that is created, read and always destroyed (also on Ctrl-C)."""
    if dsn is not None:
        try:
            params = dict(psycopg2.extensions.parse_dsn(dsn))
        except psycopg2.ProgrammingError as exc:
            raise SystemError_(f"--dsn: {str(exc).strip()}") from None
        rows, version = _read(params)
        return rows, version, "an existing server (--dsn)"
    box = Sandbox(root=sandbox_root)
    try:
        box.create()
        box.start()
        rows, version = _read(box.conn_params())
    finally:
        with _uninterrupted():
            box.destroy()
    return rows, version, "a managed sandbox (a freshly initdb'd cluster)"

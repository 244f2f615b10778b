"""A config as PostgreSQL reads it: postgresql.conf lines, or ALTER SYSTEM statements
that are correct to run as printed (``psql -f``), saying what needs a restart.

Names come from a validated spec (identifier characters only) and are quoted as
identifiers in SQL; values are validated and formatted by the spec, then quoted
as literals. Nothing from the config is pasted unquoted.
"""

from __future__ import annotations

import re

from autotune.spec import Config, Spec
from autotune.systems._render import formatted

_PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def quote_literal(text: str) -> str:
    """A single-quoted literal for postgresql.conf and SQL: quotes doubled."""
    return "'" + text.replace("'", "''") + "'"


def _restart(spec: Spec, values: dict[str, str]) -> list[str]:
    return [name for name in values if spec.knobs[name].apply == "restart"]


def conf(spec: Spec, config: Config) -> str:
    """postgresql.conf lines; a knob read only at server start says so."""
    values = formatted(spec, config)
    restart = set(_restart(spec, values))
    lines = []
    for name, value in values.items():
        line = f"{name} = {value if _PLAIN_NUMBER.match(value) else quote_literal(value)}"
        lines.append(line + ("  # needs a restart" if name in restart else ""))
    return "\n".join(lines)


def sql(spec: Spec, config: Config) -> str:
    """ALTER SYSTEM for every knob, then the reload; the knobs a reload cannot change
    come last, under a comment, and the text ends by naming them.

    Run with ``psql -v ON_ERROR_STOP=1 -f FILE`` (each statement on its own: ALTER
    SYSTEM cannot run inside a transaction block), then restart for those knobs.
    """
    values = formatted(spec, config)
    restart = _restart(spec, values)
    lines = [f"ALTER SYSTEM SET {_ident(n)} = {quote_literal(v)};" for n, v in values.items()
             if n not in restart]  # fmt: skip
    if restart:
        lines.append("-- read only at server start: set now, in effect after the restart below")
        lines += [f"ALTER SYSTEM SET {_ident(n)} = {quote_literal(values[n])};" for n in restart]
    lines.append("SELECT pg_reload_conf();")
    if restart:
        lines.append(
            f"-- now restart PostgreSQL (pg_ctl restart, or systemctl restart postgresql) "
            f"for {', '.join(restart)}: a reload does not apply them"
        )
    return "\n".join(lines)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


FORMATS = {"conf": conf, "sql": sql}

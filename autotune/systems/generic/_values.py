"""How a spec-only system's values meet its commands: the OS user a server runs as,
a value as a SQL literal for an online statement, and whether a value read back
is the value set."""

from __future__ import annotations

import math
import os
import pwd
from fractions import Fraction

from autotune.spec import Knob, UnitError, parse_quantity


def os_user() -> str:
    """The OS user autotune runs as: a server told to run as ``{user}`` runs as us."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def sql_literal(knob: Knob, text: str) -> str:
    """``text`` as a SQL literal: a number bare (render wrote it), anything else a
    quoted string with quotes and backslashes doubled."""
    if knob.type in ("integer", "real"):
        try:
            if math.isfinite(float(text)):
                return text
        except ValueError:
            pass
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def same_value(knob: Knob, wanted: str, have: str, words: tuple[str, str]) -> bool:
    """Whether the value read back is the value set, as the knob reads values: booleans
    by any of their spellings, enums case-insensitively, numbers by value and unit."""
    if have == wanted:
        return True
    if knob.type == "bool":
        spell = {words[0].lower(): False, words[1].lower(): True}
        for word in ("off", "false", "no", "0"):
            spell.setdefault(word, False)
        for word in ("on", "true", "yes", "1"):
            spell.setdefault(word, True)
        set_to, runs = spell.get(wanted.lower()), spell.get(have.lower())
        return set_to is not None and set_to == runs
    if knob.type == "enum":
        return wanted.lower() == have.lower()
    try:
        x, y = parse_quantity(wanted, knob.unit), parse_quantity(have, knob.unit)
    except UnitError:
        return False
    return bool(abs(x - y) <= Fraction(1, 10**9) * max(abs(x), abs(y), Fraction(1)))

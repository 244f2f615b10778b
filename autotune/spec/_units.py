"""Units and quantities: the dimension arithmetic behind knob bounds and values.

Memory uses binary multiples (1 kB = 1024 B) and time the units PostgreSQL
accepts, as in the PostgreSQL docs section 20.1.1 "Parameter Names and Values".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from autotune.spec._machine import Machine

MEMORY_UNITS: dict[str, int] = {
    "B": 1,
    "kB": 1024,
    "MB": 1024**2,
    "GB": 1024**3,
    "TB": 1024**4,
}
# Time in microseconds, so every unit is an exact integer multiple.
TIME_UNITS: dict[str, int] = {
    "us": 1,
    "ms": 1000,
    "s": 1_000_000,
    "min": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
}

_NATIVE_RE = re.compile(r"^(\d+)?\s*([A-Za-z]+)$")
_QUANTITY_RE = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")
_PERCENT_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*memory\s*$")
_TIMES_CPUS_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*cpus\s*$")


_LIMIT = Fraction(10) ** 30  # far beyond any knob; keeps float() from overflowing


class UnitError(ValueError):
    """A unit or quantity that cannot be understood."""


@dataclass(frozen=True)
class Unit:
    """A native unit such as ``8kB``: a dimension and its size in base units.

    Base units are bytes for memory and microseconds for time; ``None`` is the
    dimension of plain numbers.
    """

    text: str | None
    dimension: str | None  # "memory" | "time" | None
    base: int  # size of one native unit in base units

    @classmethod
    def parse(cls, text: str | None) -> Unit:
        if text is None or text == "":
            return cls(None, None, 1)
        m = _NATIVE_RE.match(str(text).strip())
        if not m:
            raise UnitError(f"unknown unit {text!r}")
        count = int(m.group(1) or 1)
        name = m.group(2)
        if name in MEMORY_UNITS:
            return cls(str(text), "memory", count * MEMORY_UNITS[name])
        if name in TIME_UNITS:
            return cls(str(text), "time", count * TIME_UNITS[name])
        known = f"memory: {' '.join(MEMORY_UNITS)}; time: {' '.join(TIME_UNITS)}"
        raise UnitError(f"unknown unit {text!r} ({known})")

    def si_factor(self) -> float:
        """Size of one native unit in bytes (memory) or seconds (time)."""
        if self.dimension == "time":
            return self.base / 1_000_000
        return float(self.base)


def parse_quantity(value: object, unit: Unit, machine: Machine | None = None) -> Fraction:
    """Read a number, ``128MB``, ``5min``, ``50% memory`` or ``2x cpus`` in ``unit``.

    A bare number is already in the native unit. Returns an exact fraction so
    that integer knobs can detect values that are not whole native units.
    """
    if isinstance(value, bool):
        raise UnitError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnitError(f"{value!r} is not a finite number")
        # Through repr, so YAML's 0.9 is exactly 9/10 and not its binary neighbour.
        return Fraction(repr(value))
    if not isinstance(value, str):
        raise UnitError(f"expected a number or quantity, got {value!r}")
    m = _PERCENT_MEMORY_RE.match(value)
    if m:
        if unit.dimension != "memory":
            raise UnitError(f"{value!r} is a memory size but the knob's unit is {unit.text!r}")
        if machine is None:
            raise UnitError(f"{value!r} needs the target machine")
        return Fraction(m.group(1)) / 100 * machine.memory_bytes / unit.base
    m = _TIMES_CPUS_RE.match(value)
    if m:
        if unit.dimension is not None:
            raise UnitError(f"{value!r} is a count but the knob's unit is {unit.text!r}")
        if machine is None:
            raise UnitError(f"{value!r} needs the target machine")
        return Fraction(m.group(1)) * machine.cpus
    m = _QUANTITY_RE.match(value)
    if not m:
        raise UnitError(f"cannot read {value!r} as a quantity")
    number = Fraction(m.group(1))
    if abs(number) > _LIMIT:
        raise UnitError(f"{value!r} is too large")
    suffix = m.group(2)
    if not suffix:
        return number
    if suffix in MEMORY_UNITS:
        if unit.dimension != "memory":
            raise UnitError(f"{value!r} is a memory size but the knob's unit is {unit.text!r}")
        return number * MEMORY_UNITS[suffix] / unit.base
    if suffix in TIME_UNITS:
        if unit.dimension != "time":
            raise UnitError(f"{value!r} is a time but the knob's unit is {unit.text!r}")
        return number * TIME_UNITS[suffix] / unit.base
    raise UnitError(f"unknown unit {suffix!r} in {value!r}")


def format_quantity(value: int, unit: Unit) -> str:
    """Render whole native units in the largest unit that is exact: 16384 x 8kB -> 128MB."""
    if unit.dimension is None:
        return str(value)
    table = MEMORY_UNITS if unit.dimension == "memory" else TIME_UNITS
    total = value * unit.base
    if total == 0:
        return "0"
    for name, size in sorted(table.items(), key=lambda kv: -kv[1]):
        if name == "B":
            continue  # PostgreSQL before 11 did not accept B; kB always works
        if total % size == 0:
            return f"{total // size}{name}"
    return str(value)

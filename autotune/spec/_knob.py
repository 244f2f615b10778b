"""One knob: its type, bounds, scale, special values and apply class, and how a value
is checked and written as the system reads it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from autotune.spec._units import Unit, UnitError, format_quantity, parse_quantity

Value = int | float | str | bool
Config = dict[str, Value]

KNOB_TYPES = ("integer", "real", "enum", "bool")
APPLY_CLASSES = ("online", "reload", "restart")
SAFETY_CLASSES = ("safe", "unsafe")
SCALES = ("linear", "log")
KNOB_FIELDS = frozenset(
    {
        "type",
        "unit",
        "step",
        "min",
        "max",
        "default",
        "scale",
        "apply",
        "safety",
        "tunable",
        "special",
        "values",
        "description",
    }
)
SPEC_FIELDS = frozenset({"system", "description", "applier", "knobs", "constraints", "groups"})
COMPOSITE_FIELDS = frozenset({"system", "description", "parts"})
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}
APPLY_RANK = {"online": 0, "reload": 1, "restart": 2}


class SpecError(ValueError):
    """A spec with problems; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class KnobValueError(ValueError):
    """A value that a knob does not accept."""


@dataclass(frozen=True)
class Knob:
    """One tunable parameter, with bounds resolved to native units on a machine."""

    name: str
    type: Literal["integer", "real", "enum", "bool"]
    default: Value
    unit: Unit = field(default_factory=lambda: Unit(None, None, 1))
    min: float | None = None
    max: float | None = None
    scale: Literal["linear", "log"] = "linear"
    apply: Literal["online", "reload", "restart"] = "reload"
    safety: Literal["safe", "unsafe"] = "safe"
    tunable: bool = True
    special: tuple[Value, ...] = ()
    values: tuple[str, ...] = ()
    description: str = ""
    step: int = 1  # integer knobs: the system takes multiples of this many native units

    @property
    def numeric(self) -> bool:
        return self.type in ("integer", "real")

    def validate(self, value: object) -> Value:
        """Return ``value`` in canonical native form, or raise KnobValueError.

        Every value that reaches a system passes through here, so nothing a
        user or an optimiser produced is ever applied unchecked.
        """
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            raise KnobValueError(f"{self.name}: {value!r} is not a boolean")
        if self.type == "enum":
            if isinstance(value, str) and value in self.values:
                return value
            raise KnobValueError(f"{self.name}: {value!r} is not one of {list(self.values)}")
        try:
            number = parse_quantity(value, self.unit)
        except UnitError as exc:
            raise KnobValueError(f"{self.name}: {exc}") from None
        if self.type == "integer":
            if number.denominator != 1:
                raise KnobValueError(
                    f"{self.name}: {value!r} is not a whole number of {self.unit.text or 'units'}"
                )
            result: Value = int(number)
            if self.step > 1 and result % self.step and result not in self.special:
                raise KnobValueError(
                    f"{self.name}: {value!r} is not a multiple of {self.format(self.step)}"
                )
        else:
            result = float(number)
            if not math.isfinite(result):
                raise KnobValueError(f"{self.name}: {value!r} is not finite")
        if result in self.special:
            return result
        assert self.min is not None and self.max is not None
        if not self.min <= float(result) <= self.max:
            bounds = f"[{self.format(self.lo)}, {self.format(self.hi)}]"
            raise KnobValueError(f"{self.name}: {value!r} is outside {bounds}")
        return result

    @property
    def lo(self) -> Value:
        assert self.min is not None
        return int(self.min) if self.type == "integer" else self.min

    @property
    def hi(self) -> Value:
        assert self.max is not None
        return int(self.max) if self.type == "integer" else self.max

    def format(self, value: Value) -> str:
        """The value as the system accepts it: ``128MB``, ``on``, ``0.9``."""
        if self.type == "bool":
            return "on" if value else "off"
        if self.type == "enum":
            return str(value)
        if value in self.special:
            # e.g. -1 for "auto": bare, since a unit would change its meaning.
            return f"{value:g}" if isinstance(value, float) else str(value)
        if self.type == "integer":
            return format_quantity(int(value), self.unit)
        return f"{float(value):.6g}"

    def to_si(self, value: Value) -> float:
        """Bytes for memory, seconds for time, 0/1 for booleans: how constraints see it."""
        if self.type == "enum":
            raise KnobValueError(f"{self.name}: enum values have no magnitude")
        if self.type == "bool":
            return 1.0 if value else 0.0
        return float(value) * self.unit.si_factor()

"""Knob specs: parse, validate, units, constraints."""

from autotune.spec._expr import Constraint, ExprError
from autotune.spec._knob import APPLY_RANK, Config, Knob, KnobValueError, SpecError, Value
from autotune.spec._machine import Machine
from autotune.spec._spec import (
    Spec,
    composite_text,
    load_spec,
    load_yaml,
    parse_spec,
)
from autotune.spec._units import TIME_UNITS, Unit, UnitError, format_quantity, parse_quantity

__all__ = [
    "APPLY_RANK",
    "TIME_UNITS",
    "Config",
    "Constraint",
    "ExprError",
    "Knob",
    "KnobValueError",
    "Machine",
    "Spec",
    "SpecError",
    "Unit",
    "UnitError",
    "Value",
    "composite_text",
    "format_quantity",
    "load_spec",
    "load_yaml",
    "parse_quantity",
    "parse_spec",
]

"""Knob specs: parse, validate, units, constraints."""

from autotune.spec._expr import Constraint, ExprError
from autotune.spec._machine import Machine
from autotune.spec._spec import (
    APPLY_RANK,
    Config,
    Knob,
    KnobValueError,
    Spec,
    SpecError,
    Value,
    composite_text,
    load_spec,
    load_yaml,
    parse_spec,
)
from autotune.spec._units import Unit, UnitError

__all__ = [
    "APPLY_RANK",
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
    "load_spec",
    "load_yaml",
    "parse_spec",
]

"""Knob specs: the YAML contract users write, loaded into checked, resolved knobs.

Loading reports every problem at once, one line each, naming the file, the
knob and the field, so a user fixing a spec sees the whole list in one go.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from autotune.spec._expr import BUILTIN_NAMES, Constraint, ExprError
from autotune.spec._knob import (
    APPLY_CLASSES,
    COMPOSITE_FIELDS,
    KNOB_FIELDS,
    KNOB_TYPES,
    NAME_RE,
    SAFETY_CLASSES,
    SCALES,
    SPEC_FIELDS,
    Config,
    Knob,
    KnobValueError,
    SpecError,
    Value,
)
from autotune.spec._machine import Machine
from autotune.spec._units import Unit, UnitError, parse_quantity


@dataclass(frozen=True)
class Spec:
    """A loaded knob spec: its knobs, constraints and the text it came from."""

    system: str
    knobs: dict[str, Knob]
    constraints: tuple[Constraint, ...] = ()
    description: str = ""
    applier: Any = None
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""
    path: str = "<memory>"
    # A composite spec's parts, each under its namespace: knob "postgres.shared_buffers"
    # is the postgres part's "shared_buffers". Empty for a plain spec.
    parts: tuple[tuple[str, Spec], ...] = ()

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    def drives(self, system: str) -> bool:
        """Whether a workload for ``system`` runs against this spec: its own, or a part's."""
        return system == self.system or any(ns == system for ns, _ in self.parts)

    def defaults(self) -> Config:
        return {name: knob.default for name, knob in self.knobs.items()}

    def constraint_env(self, config: Mapping[str, Value], machine: Machine) -> dict[str, float]:
        env: dict[str, float] = {"memory": float(machine.memory_bytes), "cpus": float(machine.cpus)}
        merged = {**self.defaults(), **config}
        for name, value in merged.items():
            knob = self.knobs.get(name)
            if knob is not None and knob.type != "enum":
                env[name] = knob.to_si(value)
        return env

    def violated(self, config: Mapping[str, Value], machine: Machine) -> list[str]:
        """The constraints that ``config`` (over the defaults) breaks."""
        env = self.constraint_env(config, machine)
        return [c.text for c in self.constraints if not c.holds(env)]


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, message: str, knob: str | None = None, fld: str | None = None) -> None:
        where = [self.path]
        if knob is not None:
            where.append(f"knob {knob!r}")
        if fld is not None:
            where.append(f"field {fld!r}")
        self.lines.append(": ".join([*where, message]))


@dataclass(frozen=True)
class Duplicate:
    """A key given twice in one YAML mapping: YAML would silently keep the last."""

    path: tuple[str, ...]  # keys leading to the mapping, then the duplicated key
    line: int


def _duplicates(node: yaml.Node, path: tuple[str, ...], out: list[Duplicate]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                out.append(Duplicate((*path, key), key_node.start_mark.line + 1))
            seen.add(key)
            _duplicates(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, (*path, str(i)), out)


# libyaml's parser when PyYAML was built with it: about ten times faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> tuple[Any, list[Duplicate]]:
    """Parse YAML safely; also return every duplicate key, at any depth, with its path."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        found: list[Duplicate] = []
        _duplicates(node, (), found)
        return loader.construct_document(node), found
    finally:
        loader.dispose()


def load_spec(path: str | Path, machine: Machine | None = None) -> Spec:
    """Load and check a spec file; raise SpecError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_spec(text, str(path), machine)


def composite_text(parts: Sequence[tuple[str, str, str]]) -> str:
    """A composite spec's file text from its parts' (namespace, path, spec text).

    The parts' texts are kept verbatim, so the composite is one self-contained
    document that any tuner or agent parses back to the same spec.
    """

    class _Block(str):
        pass

    def block(dumper: yaml.SafeDumper, value: _Block) -> yaml.Node:
        return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")

    class _Dumper(yaml.SafeDumper):
        pass

    _Dumper.add_representer(_Block, block)
    doc = {
        "system": "+".join(ns for ns, _, _ in parts),
        "description": "Joint space of " + ", ".join(f"{ns} ({p})" for ns, p, _ in parts),
        "parts": {ns: _Block(t if t.endswith("\n") else t + "\n") for ns, _, t in parts},
    }
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def _parse_composite(data: dict[Any, Any], text: str, path: str, machine: Machine) -> Spec:
    """Knobs, constraints and groups of every part, renamed ``ns.name``; applied in order."""
    problems = _Problems(path)
    for key in sorted(set(data) - COMPOSITE_FIELDS, key=str):
        problems.add(f"unknown field {key!r} in a composite spec", fld=str(key))
    raw_parts = data.get("parts")
    if not isinstance(raw_parts, dict) or not raw_parts:
        problems.add("must map each part's namespace to its spec text", fld="parts")
        raw_parts = {}
    parts: list[tuple[str, Spec]] = []
    for ns, part_text in raw_parts.items():
        if not isinstance(ns, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", ns):
            problems.add(f"namespace {ns!r} must be a plain name", fld="parts")
            continue
        if not isinstance(part_text, str):
            problems.add("must be the part's spec text", fld=f"parts.{ns}")
            continue
        try:
            part = parse_spec(part_text, f"{path}#{ns}", machine)
        except SpecError as exc:
            problems.lines += exc.problems
            continue
        if part.parts:
            problems.add("a part cannot itself be composite", fld=f"parts.{ns}")
            continue
        parts.append((ns, part))
    if problems.lines:
        raise SpecError(problems.lines)
    knobs: dict[str, Knob] = {}
    constraints: list[Constraint] = []
    groups: dict[str, tuple[str, ...]] = {}
    for ns, part in parts:
        names = {name: f"{ns}.{name}" for name in part.knobs}
        for name, knob in part.knobs.items():
            knobs[names[name]] = dataclasses.replace(knob, name=names[name])
        constraints += [c.renamed(names, f"{ns}: ") for c in part.constraints]
        for group, members in part.groups.items():
            groups[f"{ns}.{group}"] = tuple(names[m] for m in members)
    system = data.get("system")
    expected = "+".join(ns for ns, _ in parts)
    if system != expected:
        raise SpecError([f"{path}: field 'system': must be {expected!r} for these parts"])
    return Spec(
        system=expected,
        knobs=knobs,
        constraints=tuple(constraints),
        description=str(data.get("description") or ""),
        applier={"kind": "composite"},
        groups=groups,
        source=text,
        path=path,
        parts=tuple(parts),
    )


def parse_spec(text: str, path: str = "<memory>", machine: Machine | None = None) -> Spec:
    machine = machine or Machine.local()
    problems = _Problems(path)
    try:
        data, duplicates = load_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError([f"{path}: not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise SpecError([f"{path}: a spec must be a mapping with 'system' and 'knobs'"])
    if "parts" in data:
        return _parse_composite(data, text, path, machine)
    for dup in duplicates:
        if dup.path[0] == "knobs" and len(dup.path) == 2:
            problems.add(f"duplicate knob {dup.path[1]!r} on line {dup.line}", fld="knobs")
        elif dup.path[0] == "knobs" and len(dup.path) >= 3:
            problems.add(
                f"duplicate key on line {dup.line}", knob=dup.path[1], fld=".".join(dup.path[2:])
            )
        else:
            problems.add(f"duplicate key on line {dup.line}", fld=".".join(dup.path))
    for key in sorted(set(data) - SPEC_FIELDS, key=str):
        problems.add(f"unknown field {key!r}", fld=str(key))
    system = data.get("system")
    if not isinstance(system, str) or not NAME_RE.match(system):
        problems.add("missing or invalid system name", fld="system")
        system = "?"
    raw_knobs = data.get("knobs")
    knobs: dict[str, Knob] = {}
    if not isinstance(raw_knobs, dict) or not raw_knobs:
        problems.add("'knobs' must be a non-empty mapping", fld="knobs")
        raw_knobs = {}
    for name, raw in raw_knobs.items():
        knob = _parse_knob(str(name), raw, machine, problems)
        if knob is not None:
            knobs[str(name)] = knob
    constraints: list[Constraint] = []
    raw_constraints = data.get("constraints") or []
    if not isinstance(raw_constraints, list):
        problems.add("'constraints' must be a list of expressions", fld="constraints")
        raw_constraints = []
    for i, expr in enumerate(raw_constraints):
        where = f"constraints[{i}]"
        try:
            constraint = Constraint.parse(expr)
        except ExprError as exc:
            problems.add(f"{expr!r}: {exc}", fld=where)
            continue
        bad = False
        for ref in sorted(constraint.names - BUILTIN_NAMES):
            if ref not in raw_knobs:
                problems.add(f"{expr!r}: unknown knob {ref!r}", fld=where)
                bad = True
            elif ref in knobs and knobs[ref].type == "enum":
                problems.add(f"{expr!r}: enum knob {ref!r} has no magnitude", fld=where)
                bad = True
        if not bad:
            constraints.append(constraint)
    groups: dict[str, tuple[str, ...]] = {}
    raw_groups = data.get("groups") or {}
    if not isinstance(raw_groups, dict):
        problems.add("must map a group name to a list of knobs", fld="groups")
        raw_groups = {}
    for group, members in raw_groups.items():
        where = f"groups.{group}"
        if not isinstance(members, list) or not members:
            problems.add("must be a non-empty list of knob names", fld=where)
            continue
        for member in members:
            if not isinstance(member, str) or member not in raw_knobs:
                problems.add(f"unknown knob {member!r}", fld=where)
        groups[str(group)] = tuple(str(m) for m in members)
    if problems.lines:
        raise SpecError(problems.lines)
    spec = Spec(
        groups=groups,
        system=system,
        knobs=knobs,
        constraints=tuple(constraints),
        description=str(data.get("description") or ""),
        applier=data.get("applier"),
        source=text,
        path=path,
    )
    try:
        broken = spec.violated({}, machine)
    except ExprError as exc:
        raise SpecError([f"{path}: field 'constraints': {exc}"]) from None
    if broken:
        raise SpecError(
            [f"{path}: field 'constraints': the defaults break {text!r}" for text in broken]
        )
    return spec


def _relative(bound: object) -> bool:
    return isinstance(bound, str) and ("memory" in bound or "cpus" in bound)


def _parse_knob(name: str, raw: object, machine: Machine, problems: _Problems) -> Knob | None:
    start = len(problems.lines)
    if not NAME_RE.match(name):
        problems.add("invalid knob name (letters, digits, '_' and '.')", knob=name)
    if not isinstance(raw, dict):
        problems.add("must be a mapping of fields", knob=name)
        return None
    for key in sorted(set(raw) - KNOB_FIELDS, key=str):
        problems.add("unknown field", knob=name, fld=str(key))

    def choice(fld: str, allowed: tuple[str, ...], default: str) -> str:
        value = raw.get(fld, default)
        if value not in allowed:
            problems.add(f"{value!r} is not one of {', '.join(allowed)}", knob=name, fld=fld)
            return default
        return str(value)

    ktype = raw.get("type")
    if ktype is None:
        problems.add("missing (integer, real, enum or bool)", knob=name, fld="type")
        return None
    if ktype not in KNOB_TYPES:
        problems.add(f"{ktype!r} is not one of {', '.join(KNOB_TYPES)}", knob=name, fld="type")
        return None
    apply = choice("apply", APPLY_CLASSES, "reload")
    safety = choice("safety", SAFETY_CLASSES, "safe")
    scale = choice("scale", SCALES, "linear")
    tunable = raw.get("tunable", True)
    if not isinstance(tunable, bool):
        problems.add(f"{tunable!r} is not true or false", knob=name, fld="tunable")
    description = str(raw.get("description", ""))
    if "default" not in raw:
        problems.add("missing", knob=name, fld="default")
        return None

    common: dict[str, Any] = dict(
        name=name,
        apply=apply,
        safety=safety,
        tunable=bool(tunable),
        description=description,
    )
    if ktype == "bool":
        knob = Knob(type="bool", default=False, **common)
        try:
            knob = Knob(type="bool", default=knob.validate(raw["default"]), **common)
        except KnobValueError as exc:
            problems.add(str(exc).split(": ", 1)[1], knob=name, fld="default")
        return None if len(problems.lines) > start else knob
    if ktype == "enum":
        values = raw.get("values")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) for v in values)
        ):
            problems.add("an enum needs a non-empty list of string values", knob=name, fld="values")
            return None
        if len(set(values)) != len(values):
            problems.add("duplicate values", knob=name, fld="values")
        default = raw["default"]
        if default not in values:
            problems.add(f"{default!r} is not one of the values", knob=name, fld="default")
        knob = Knob(type="enum", default=str(default), values=tuple(values), **common)
        return None if len(problems.lines) > start else knob

    try:
        unit = Unit.parse(raw.get("unit"))
    except UnitError as exc:
        problems.add(str(exc), knob=name, fld="unit")
        return None

    def quantity(fld: str) -> Fraction | None:
        if fld not in raw:
            problems.add("missing", knob=name, fld=fld)
            return None
        try:
            return parse_quantity(raw[fld], unit, machine if fld in ("min", "max") else None)
        except UnitError as exc:
            problems.add(str(exc), knob=name, fld=fld)
            return None

    lo, hi, default_q = quantity("min"), quantity("max"), quantity("default")
    special: list[Value] = []
    raw_special = raw.get("special", [])
    if not isinstance(raw_special, list):
        problems.add("must be a list", knob=name, fld="special")
        raw_special = []
    for item in raw_special:
        try:
            q = parse_quantity(item, unit)
        except UnitError as exc:
            problems.add(str(exc), knob=name, fld="special")
            continue
        if ktype == "integer" and q.denominator != 1:
            problems.add(
                f"{item!r} is not a whole number of {unit.text or 'units'}",
                knob=name,
                fld="special",
            )
            continue
        special.append(int(q) if ktype == "integer" else float(q))
    step = 1
    if "step" in raw:
        step_q = quantity("step")
        if ktype != "integer":
            problems.add("only integer knobs take a step", knob=name, fld="step")
        elif step_q is not None and (step_q.denominator != 1 or step_q < 1):
            problems.add(
                f"{raw['step']!r} is not a positive whole number of {unit.text or 'units'}",
                knob=name,
                fld="step",
            )
        elif step_q is not None:
            step = int(step_q)
    if lo is None or hi is None or default_q is None:
        return None
    if ktype == "integer":
        # The range holds whole steps only: the system takes nothing in between.
        lo = Fraction(math.ceil(lo / step) * step)
        hi = Fraction(math.floor(hi / step) * step)
        if default_q.denominator != 1:
            problems.add(
                f"{raw['default']!r} is not a whole number of {unit.text or 'units'}",
                knob=name,
                fld="default",
            )
        elif default_q % step and default_q not in special:
            problems.add(
                f"{raw['default']!r} is not a multiple of the step {raw['step']!r}",
                knob=name,
                fld="default",
            )
    # A machine-relative bound ("75% memory") may exclude the default on a small
    # host; the default stays a valid baseline there, so the range grows to hold it.
    if _relative(raw["max"]) and default_q > hi and default_q not in special:
        hi = default_q
    if _relative(raw["min"]) and default_q < lo and default_q not in special:
        lo = default_q
    if lo > hi:
        problems.add(f"min {raw['min']!r} is greater than max {raw['max']!r}", knob=name, fld="min")
    elif not (lo <= default_q <= hi) and default_q not in special:
        problems.add(
            f"{raw['default']!r} is outside [{raw['min']!r}, {raw['max']!r}]",
            knob=name,
            fld="default",
        )
    if scale == "log" and lo <= 0:
        problems.add("log scale needs min > 0", knob=name, fld="scale")
    if len(problems.lines) > start:
        return None
    return Knob(
        type=ktype,
        unit=unit,
        min=float(lo),
        max=float(hi),
        default=int(default_q) if ktype == "integer" else float(default_q),
        scale=scale,  # type: ignore[arg-type]
        special=tuple(special),
        step=step,
        **common,
    )

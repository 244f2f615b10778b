"""Knob specs: loading, checking, and the values knobs accept."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from autotune.spec import KnobValueError, Machine, Spec, SpecError, load_spec, parse_spec
from tests.unit._support import MACHINE, ROOT, TOY_SPEC

POSTGRES = ROOT / "knobs" / "postgres.yaml"
GiB = 1024**3
SQL_INJECTION = "'; DROP TABLE x; --"

MakeSpec = Callable[..., Spec]


def problems_of(text: str, path: str = "s.yaml", machine: Machine = MACHINE) -> list[str]:
    with pytest.raises(SpecError) as err:
        parse_spec(text, path, machine)
    return err.value.problems


# -- the built-in PostgreSQL spec ---------------------------------------------------------------


def test_postgres_spec_is_big_enough_and_marks_unsafe_knobs(postgres_spec: Spec) -> None:
    assert postgres_spec.system == "postgres"
    assert len(postgres_spec.knobs) >= 25
    for name in ("fsync", "synchronous_commit", "full_page_writes"):
        assert postgres_spec.knobs[name].safety == "unsafe", name
    assert postgres_spec.knobs["shared_buffers"].safety == "safe"
    assert postgres_spec.knobs["shared_buffers"].apply == "restart"


def test_postgres_spec_resolves_units_and_machine_relative_bounds(postgres_spec: Spec) -> None:
    sb = postgres_spec.knobs["shared_buffers"]
    assert sb.unit.text == "8kB"
    assert sb.default == 16384  # 128MB
    assert sb.lo == 4096  # 32MB
    assert sb.hi == 16 * GiB // 4 // 8192  # 25% memory
    assert sb.format(sb.default) == "128MB"
    ct = postgres_spec.knobs["checkpoint_timeout"]
    assert ct.default == 300
    assert ct.format(ct.default) == "5min"
    assert postgres_spec.knobs["max_worker_processes"].hi == 16  # 4x cpus
    assert postgres_spec.knobs["wal_buffers"].special == (-1,)
    assert postgres_spec.knobs["wal_buffers"].format(-1) == "-1"
    assert postgres_spec.knobs["jit_above_cost"].format(-1.0) == "-1"


def test_postgres_spec_defaults_are_valid_and_satisfy_the_constraints(postgres_spec: Spec) -> None:
    for name, knob in postgres_spec.knobs.items():
        assert knob.validate(knob.default) == knob.default, name
        assert knob.validate(knob.format(knob.default)) == knob.default, name
    assert postgres_spec.violated({}, MACHINE) == []
    assert len(postgres_spec.constraints) >= 5
    for members in postgres_spec.groups.values():
        assert set(members) <= set(postgres_spec.knobs)


@pytest.mark.parametrize(
    "machine",
    [
        Machine(memory_bytes=4 * GiB, cpus=2),  # a common small VM
        Machine(memory_bytes=8 * GiB, cpus=1),  # a one-CPU container or VM
        Machine(memory_bytes=8 * GiB, cpus=2),
        Machine(memory_bytes=24 * GiB, cpus=2),  # the "small host" the spec was written for
        Machine(memory_bytes=64 * GiB, cpus=16),
        Machine(memory_bytes=512 * GiB, cpus=128),
    ],
    ids=lambda m: f"{m.memory_bytes // GiB}GiB-{m.cpus}cpu",
)
def test_postgres_spec_loads_on_small_and_large_hosts(machine: Machine) -> None:
    """`autotune knobs validate knobs/postgres.yaml` must pass on any host autotune runs on."""
    spec = load_spec(POSTGRES, machine)
    assert spec.violated({}, machine) == []


def test_load_spec_missing_file() -> None:
    with pytest.raises(SpecError) as err:
        load_spec("/nonexistent/spec.yaml", MACHINE)
    assert err.value.problems == ["/nonexistent/spec.yaml: cannot read: No such file or directory"]


def test_spec_keeps_its_source_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_SPEC)
    spec = load_spec(path, MACHINE)
    assert spec.source == TOY_SPEC
    assert spec.path == str(path)
    assert spec.content_hash == hashlib.sha256(TOY_SPEC.encode()).hexdigest()
    assert spec.applier == "postgres"
    assert spec.description == "a test spec with every kind of knob"
    assert spec.groups["small"] == ("mem", "ratio")
    changed = parse_spec(TOY_SPEC + "# a comment\n", str(path), MACHINE)
    assert changed.content_hash != spec.content_hash


# -- Knob.validate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["buffers", "mem", "ratio", "cost", "workers", "flush", "auto", "mode", "jit"]
)
def test_sql_metacharacters_are_rejected_by_every_knob_type(toy_spec: Spec, name: str) -> None:
    knob = toy_spec.knobs[name]
    for value in (SQL_INJECTION, "on'; DROP TABLE x; --", "1; DROP TABLE x", "a' OR '1'='1"):
        with pytest.raises(KnobValueError):
            knob.validate(value)


@pytest.mark.parametrize(
    "name", ["shared_buffers", "random_page_cost", "synchronous_commit", "fsync", "jit"]
)
def test_sql_metacharacters_are_rejected_by_postgres_knobs(postgres_spec: Spec, name: str) -> None:
    with pytest.raises(KnobValueError, match=name):
        postgres_spec.knobs[name].validate(SQL_INJECTION)


def test_integer_validate(toy_spec: Spec) -> None:
    buffers = toy_spec.knobs["buffers"]
    assert buffers.validate("128MB") == 16384
    assert buffers.validate(128) == 128  # native units: 1MB
    assert buffers.validate("1GB") == 131072
    with pytest.raises(KnobValueError, match="outside"):
        buffers.validate("2GB")
    with pytest.raises(KnobValueError, match="outside"):
        buffers.validate("512kB")
    with pytest.raises(KnobValueError, match="whole number"):
        buffers.validate("12kB")
    with pytest.raises(KnobValueError):
        buffers.validate(True)  # a bool is not a number


def test_special_values_bypass_the_bounds(toy_spec: Spec) -> None:
    auto = toy_spec.knobs["auto"]
    assert auto.validate(-1) == -1
    assert auto.validate("-1") == -1
    with pytest.raises(KnobValueError, match="outside"):
        auto.validate(-2)
    with pytest.raises(KnobValueError, match="outside"):
        auto.validate(0)
    flush = toy_spec.knobs["flush"]
    assert flush.validate(0) == 0
    assert flush.validate("0") == 0
    assert flush.validate("8kB") == 1


def test_real_validate(toy_spec: Spec) -> None:
    ratio = toy_spec.knobs["ratio"]
    assert ratio.validate("0.9") == pytest.approx(0.9)
    assert ratio.validate(1) == 1.0
    assert isinstance(ratio.validate(1), float)
    with pytest.raises(KnobValueError, match="outside"):
        ratio.validate(1.5)
    with pytest.raises(KnobValueError):
        ratio.validate("0.5MB")  # a plain number has no memory unit


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, "1e400"], ids=["nan", "inf", "-inf", "1e400"]
)
def test_non_finite_values_raise_knob_value_error(toy_spec: Spec, value: object) -> None:
    """validate promises KnobValueError for any value it does not accept."""
    for name in ("ratio", "cost", "mem"):
        with pytest.raises(KnobValueError):
            toy_spec.knobs[name].validate(value)


def test_enum_validate(toy_spec: Spec) -> None:
    mode = toy_spec.knobs["mode"]
    assert mode.validate("b") == "b"
    for bad in ("B", "d", "", 1, None, True, " a"):
        with pytest.raises(KnobValueError, match="not one of"):
            mode.validate(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("on", True),
        ("off", False),
        ("TRUE", True),
        ("false", False),
        ("yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
    ],
)
def test_bool_validate(toy_spec: Spec, value: object, expected: bool) -> None:
    assert toy_spec.knobs["jit"].validate(value) is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, 1, 0, None, "onn"])
def test_bool_validate_rejects(toy_spec: Spec, value: object) -> None:
    with pytest.raises(KnobValueError, match="not a boolean"):
        toy_spec.knobs["jit"].validate(value)


def test_format(toy_spec: Spec) -> None:
    k = toy_spec.knobs
    assert k["jit"].format(True) == "on"
    assert k["jit"].format(False) == "off"
    assert k["mode"].format("c") == "c"
    assert k["mem"].format(4096) == "4MB"
    assert k["buffers"].format(16384) == "128MB"
    assert k["ratio"].format(0.25) == "0.25"
    assert k["auto"].format(-1) == "-1"
    assert k["flush"].format(0) == "0"


def test_to_si(toy_spec: Spec, postgres_spec: Spec) -> None:
    assert toy_spec.knobs["buffers"].to_si(16384) == 128 * 1024**2
    assert toy_spec.knobs["mem"].to_si(4096) == 4 * 1024**2
    assert toy_spec.knobs["ratio"].to_si(0.5) == 0.5
    assert toy_spec.knobs["jit"].to_si(True) == 1.0
    assert toy_spec.knobs["jit"].to_si(False) == 0.0
    assert postgres_spec.knobs["checkpoint_timeout"].to_si(300) == 300.0
    assert postgres_spec.knobs["wal_writer_delay"].to_si(200) == pytest.approx(0.2)
    with pytest.raises(KnobValueError, match="no magnitude"):
        toy_spec.knobs["mode"].to_si("a")


def test_violated_merges_defaults(toy_spec: Spec) -> None:
    assert toy_spec.violated({}, MACHINE) == []
    # buffers 1GB leaves no room for 10 x mem
    assert toy_spec.violated({"buffers": 131072}, MACHINE) == ["buffers + 10 * mem <= 1GB"]
    assert toy_spec.violated({"buffers": 128, "mem": 64}, MACHINE) == []


def test_constraints_see_memory_and_cpus(make_spec: MakeSpec) -> None:
    text = """\
system: x
knobs:
  a: {type: integer, unit: MB, min: 1, max: 100GB, default: 1GB}
  w: {type: integer, min: 1, max: 64, default: 2}
constraints:
  - a <= 50% memory
  - w <= 2x cpus
"""
    spec = make_spec(text)
    assert spec.violated({"a": 8192, "w": 8}, MACHINE) == []
    assert spec.violated({"a": 8193, "w": 9}, MACHINE) == ["a <= 50% memory", "w <= 2x cpus"]
    small = Machine(memory_bytes=4 * GiB, cpus=1)
    assert spec.violated({"a": 8192, "w": 8}, small) == ["a <= 50% memory", "w <= 2x cpus"]


# -- problems: every one reported, naming the file, the knob and the field ----------------------


def test_every_problem_is_reported_at_once() -> None:
    text = """\
system: "bad name"
extra: 1
knobs:
  "bad name":
    type: bool
    default: maybe
  a:
    type: integer
    min: 0
    max: 10
    default: 5
    scale: log
    tunable: sometimes
    colour: red
    apply: never
    safety: risky
  e:
    type: enum
    values: [x, y, x]
    default: z
  e2:
    type: enum
    values: [on, off]
    default: on
  r:
    type: real
    min: 0
    default: 1
  i:
    type: integer
    min: 0
    max: 10
    default: 2.5
  s:
    type: integer
    min: 0
    max: 10
    default: 1
    special: 5
  t:
    type: wat
    default: 1
  nd:
    type: integer
    min: 0
    max: 10
groups:
  g: [a, nosuch]
  h: []
"""
    problems = problems_of(text, "s.yaml")
    expected = [
        "s.yaml: field 'extra': unknown field",
        "s.yaml: field 'system': missing or invalid system name",
        "s.yaml: knob 'bad name': invalid knob name",
        "s.yaml: knob 'bad name': field 'default': 'maybe' is not a boolean",
        "s.yaml: knob 'a': field 'colour': unknown field",
        "s.yaml: knob 'a': field 'apply': 'never' is not one of online, reload, restart",
        "s.yaml: knob 'a': field 'safety': 'risky' is not one of safe, unsafe",
        "s.yaml: knob 'a': field 'tunable': 'sometimes' is not true or false",
        "s.yaml: knob 'a': field 'scale': log scale needs min > 0",
        "s.yaml: knob 'e': field 'values': duplicate values",
        "s.yaml: knob 'e': field 'default': 'z' is not one of the values",
        "s.yaml: knob 'e2': field 'values': an enum needs a non-empty list of string values",
        "s.yaml: knob 'r': field 'max': missing",
        "s.yaml: knob 'i': field 'default': 2.5 is not a whole number",
        "s.yaml: knob 's': field 'special': must be a list",
        "s.yaml: knob 't': field 'type': 'wat' is not one of integer, real, enum, bool",
        "s.yaml: knob 'nd': field 'default': missing",
        "s.yaml: field 'groups.g': unknown knob 'nosuch'",
        "s.yaml: field 'groups.h': must be a non-empty list",
    ]
    assert len(problems) == len(expected), problems
    for prefix in expected:
        assert sum(line.startswith(prefix) for line in problems) == 1, (prefix, problems)
    assert all("\n" not in line for line in problems)


def test_structure_problems() -> None:
    assert problems_of("- a\n- b\n") == [
        "s.yaml: a spec must be a mapping with 'system' and 'knobs'"
    ]
    assert problems_of("system: x\nknobs: {}\n") == [
        "s.yaml: field 'knobs': 'knobs' must be a non-empty mapping"
    ]
    assert problems_of("system: x\nknobs:\n  a: 5\nconstraints: a <= 1\ngroups: [a]\n") == [
        "s.yaml: knob 'a': must be a mapping of fields",
        "s.yaml: field 'constraints': 'constraints' must be a list of expressions",
        "s.yaml: field 'groups': must map a group name to a list of knobs",
    ]
    (line,) = problems_of("system: x\nknobs: [unclosed\n")
    assert line.startswith("s.yaml: not valid YAML")


def test_duplicate_keys_inside_a_knob(make_spec: MakeSpec) -> None:
    text = "system: x\nknobs:\n  a:\n    type: bool\n    default: true\n    default: false\n"
    assert problems_of(text) == ["s.yaml: knob 'a': field 'default': duplicate key on line 6"]


def test_duplicate_knob_names_the_knob_and_the_line() -> None:
    text = "system: x\nknobs:\n  a: {type: bool, default: true}\n  a: {type: bool, default: no}\n"
    assert problems_of(text) == ["s.yaml: field 'knobs': duplicate knob 'a' on line 4"]


def test_duplicate_top_level_key() -> None:
    text = "system: x\nsystem: y\nknobs:\n  a: {type: bool, default: true}\n"
    assert problems_of(text) == ["s.yaml: field 'system': duplicate key on line 2"]


def test_duplicate_group_is_reported() -> None:
    """YAML keeps the last of two keys; a spec must say so, as it does for knobs."""
    text = """\
system: x
knobs:
  a: {type: bool, default: true}
  b: {type: bool, default: true}
groups:
  g: [a]
  g: [b]
"""
    problems = problems_of(text)
    assert any("duplicate" in line and "'groups.g'" in line for line in problems), problems


def test_special_value_must_be_a_whole_number_of_native_units() -> None:
    """A special value of 4kB on an 8kB knob must not silently become 0."""
    text = """\
system: x
knobs:
  a:
    type: integer
    unit: 8kB
    min: 8kB
    max: 1MB
    default: 8kB
    special: ["4kB"]
"""
    problems = problems_of(text)
    assert any("knob 'a'" in line and "field 'special'" in line for line in problems), problems


def test_min_max_problems() -> None:
    text = """\
system: x
knobs:
  a: {type: integer, unit: kB, min: 1GB, max: 1MB, default: 1MB}
  b: {type: integer, unit: kB, min: 1MB, max: 1GB, default: 2GB}
  c: {type: integer, unit: kB, min: 1MB, max: 5min, default: 2MB}
  d: {type: integer, unit: 8kB, min: 1MB, max: 1GB, default: 1028kB}
  e: {type: real, min: 0.5, max: 1, default: 0.1}
"""
    problems = problems_of(text)
    assert problems == [
        "s.yaml: knob 'a': field 'min': min '1GB' is greater than max '1MB'",
        "s.yaml: knob 'b': field 'default': '2GB' is outside ['1MB', '1GB']",
        "s.yaml: knob 'c': field 'max': '5min' is a time but the knob's unit is 'kB'",
        "s.yaml: knob 'd': field 'default': '1028kB' is not a whole number of 8kB",
        "s.yaml: knob 'e': field 'default': 0.1 is outside [0.5, 1]",
    ]


def test_default_may_be_a_special_value_outside_the_bounds(make_spec: MakeSpec) -> None:
    text = "system: x\nknobs:\n  a: {type: integer, min: 1, max: 10, default: -1, special: [-1]}\n"
    assert make_spec(text).knobs["a"].default == -1


def test_default_cannot_be_machine_relative() -> None:
    text = (
        "system: x\nknobs:\n  a: {type: integer, unit: MB, min: 1, max: 1GB, default: 1% memory}\n"
    )
    (line,) = problems_of(text)
    assert line.startswith("s.yaml: knob 'a': field 'default':")


def test_constraint_problems() -> None:
    text = """\
system: x
knobs:
  a: {type: integer, min: 0, max: 10, default: 5}
  m: {type: enum, values: [x, y], default: x}
constraints:
  - a <= nosuch
  - m <= 1
  - a <=
  - 5
"""
    assert problems_of(text) == [
        "s.yaml: field 'constraints[0]': 'a <= nosuch': unknown knob 'nosuch'",
        "s.yaml: field 'constraints[1]': 'm <= 1': enum knob 'm' has no magnitude",
        "s.yaml: field 'constraints[2]': 'a <=': unexpected end of expression",
        "s.yaml: field 'constraints[3]': 5: a constraint must be a string, got 5",
    ]


def test_defaults_that_break_a_constraint() -> None:
    text = """\
system: x
knobs:
  a: {type: integer, min: 0, max: 10, default: 5}
  b: {type: integer, min: 0, max: 10, default: 6}
constraints:
  - a >= b
  - a <= b
"""
    assert problems_of(text) == ["s.yaml: field 'constraints': the defaults break 'a >= b'"]


def test_constraints_may_use_bool_knobs_and_builtins(make_spec: MakeSpec) -> None:
    text = """\
system: x
knobs:
  on_: {type: bool, default: false}
  n: {type: integer, min: 0, max: 64, default: 0}
constraints:
  - n * on_ <= 2x cpus
"""
    spec = make_spec(text)
    assert spec.violated({"on_": True, "n": 64}, MACHINE) == ["n * on_ <= 2x cpus"]
    assert spec.violated({"on_": False, "n": 64}, MACHINE) == []

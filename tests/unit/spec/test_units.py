"""Units and quantities: parsing, conversion to native units, formatting back."""

from __future__ import annotations

from fractions import Fraction

import pytest

from autotune.spec import Knob, KnobValueError, Machine, Unit, UnitError
from autotune.spec._units import MEMORY_UNITS, TIME_UNITS, format_quantity, parse_quantity

GiB = 1024**3
M = Machine(memory_bytes=16 * GiB, cpus=4)

U8K = Unit.parse("8kB")
UKB = Unit.parse("kB")
UMB = Unit.parse("MB")
US = Unit.parse("s")
UMS = Unit.parse("ms")
UMIN = Unit.parse("min")
NONE = Unit.parse(None)


# -- Unit.parse -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dimension", "base"),
    [
        ("B", "memory", 1),
        ("kB", "memory", 1024),
        ("8kB", "memory", 8192),
        ("16MB", "memory", 16 * 1024**2),
        ("GB", "memory", 1024**3),
        ("TB", "memory", 1024**4),
        ("us", "time", 1),
        ("ms", "time", 1000),
        ("s", "time", 1_000_000),
        ("min", "time", 60_000_000),
        ("h", "time", 3_600_000_000),
        ("d", "time", 86_400_000_000),
    ],
)
def test_unit_parse(text: str, dimension: str, base: int) -> None:
    unit = Unit.parse(text)
    assert (unit.text, unit.dimension, unit.base) == (text, dimension, base)


@pytest.mark.parametrize("text", [None, ""])
def test_no_unit_is_a_plain_number(text: str | None) -> None:
    unit = Unit.parse(text)
    assert unit.dimension is None
    assert unit.base == 1


@pytest.mark.parametrize("text", ["8kX", "kb", "mb", "8 k B", "sec", "8", "-8kB", "%"])
def test_unknown_units_are_rejected(text: str) -> None:
    with pytest.raises(UnitError, match="unknown unit"):
        Unit.parse(text)


def test_unknown_unit_message_lists_the_known_ones() -> None:
    with pytest.raises(UnitError) as err:
        Unit.parse("8kX")
    message = str(err.value)
    assert "'8kX'" in message
    for name in (*MEMORY_UNITS, *TIME_UNITS):
        assert name in message


def test_si_factor() -> None:
    assert U8K.si_factor() == 8192.0
    assert UMS.si_factor() == pytest.approx(0.001)
    assert UMIN.si_factor() == 60.0
    assert NONE.si_factor() == 1.0


# -- parse_quantity ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        ("128MB", U8K, 16384),
        ("16MB", U8K, 2048),
        ("1GB", UKB, 1024**2),
        ("64kB", U8K, 8),
        ("8192B", U8K, 1),
        ("1TB", UMB, 1024**2),
        ("128 MB", U8K, 16384),  # PostgreSQL allows space between number and unit
        ("5min", US, 300),
        ("5min", UMS, 300_000),
        ("1h", UMIN, 60),
        ("1d", US, 86_400),
        ("250ms", US, Fraction(1, 4)),
        ("1500us", UMS, Fraction(3, 2)),
        ("1.5kB", U8K, Fraction(3, 16)),
        ("1e3", NONE, 1000),
        (" 42 ", NONE, 42),
        ("-1", U8K, -1),
        (42, U8K, 42),
        (0.9, NONE, Fraction(9, 10)),  # exactly 9/10, not its binary neighbour
        (16384, U8K, 16384),  # a bare number is in the native unit
    ],
)
def test_parse_quantity_converts_to_native_units(
    value: object, unit: Unit, expected: Fraction | int
) -> None:
    assert parse_quantity(value, unit) == expected


def test_machine_relative_quantities() -> None:
    # 50% of 16 GiB in 8 kB pages
    assert parse_quantity("50% memory", U8K, M) == 8 * GiB // 8192
    assert parse_quantity("50% memory", U8K, M) == 1_048_576
    assert parse_quantity("25%memory", UMB, M) == 4096
    assert parse_quantity("12.5% memory", UKB, M) == 2 * 1024**2
    assert parse_quantity("2x cpus", NONE, M) == 8
    assert parse_quantity("1.5x cpus", NONE, M) == 6
    assert parse_quantity("4xcpus", NONE, Machine(memory_bytes=GiB, cpus=3)) == 12


def test_machine_relative_depends_on_the_machine() -> None:
    small = Machine(memory_bytes=2 * GiB, cpus=1)
    assert parse_quantity("50% memory", U8K, small) == GiB // 8192
    assert parse_quantity("2x cpus", NONE, small) == 2


@pytest.mark.parametrize(
    ("value", "unit", "message"),
    [
        ("50% memory", U8K, "needs the target machine"),
        ("2x cpus", NONE, "needs the target machine"),
    ],
)
def test_machine_relative_without_a_machine(value: str, unit: Unit, message: str) -> None:
    with pytest.raises(UnitError, match=message):
        parse_quantity(value, unit)


@pytest.mark.parametrize(
    ("value", "unit", "message"),
    [
        ("128MB", US, "memory size"),
        ("128MB", NONE, "memory size"),
        ("5min", U8K, "is a time"),
        ("5min", NONE, "is a time"),
        ("50% memory", US, "memory size"),
        ("2x cpus", U8K, "is a count"),
        ("12XB", U8K, "unknown unit"),
        ("12 kb", U8K, "unknown unit"),
        ("abc", U8K, "cannot read"),
        ("", NONE, "cannot read"),
        ("1,000", NONE, "cannot read"),
        ("0x10", NONE, "cannot read"),
        ("5min; DROP TABLE x", US, "cannot read"),
        (True, NONE, "expected a number"),
        (None, NONE, "expected a number"),
        ([1], NONE, "expected a number"),
    ],
)
def test_parse_quantity_rejects(value: object, unit: Unit, message: str) -> None:
    with pytest.raises(UnitError, match=message):
        parse_quantity(value, unit, M)


# -- whole native units -----------------------------------------------------------------------


def _int_knob(unit: str, lo: float, hi: float, special: tuple[int, ...] = ()) -> Knob:
    return Knob(
        name="k",
        type="integer",
        default=int(lo),
        unit=Unit.parse(unit),
        min=lo,
        max=hi,
        special=special,
    )


def test_integer_knob_takes_values_in_any_unit_of_its_dimension() -> None:
    knob = _int_knob("8kB", 2, 1_000_000)
    assert knob.validate("128MB") == 16384
    assert knob.validate("16kB") == 2
    assert knob.validate("1GB") == 131072
    assert knob.validate(16384) == 16384
    assert knob.validate("16384") == 16384
    assert knob.validate(16384.0) == 16384
    assert isinstance(knob.validate("128MB"), int)


@pytest.mark.parametrize("value", ["4kB", "12kB", "1000B", 2.5, "2.5"])
def test_integer_knob_refuses_values_that_are_not_whole_native_units(value: object) -> None:
    knob = _int_knob("8kB", 0, 1_000_000)
    with pytest.raises(KnobValueError, match="whole number of 8kB"):
        knob.validate(value)


def test_time_knob_whole_units() -> None:
    knob = _int_knob("s", 1, 3600)
    assert knob.validate("5min") == 300
    assert knob.validate("1h") == 3600
    with pytest.raises(KnobValueError, match="whole number of s"):
        knob.validate("1500ms")
    with pytest.raises(KnobValueError, match="outside"):
        knob.validate("2h")


# -- format_quantity --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (16384, U8K, "128MB"),
        (1, U8K, "8kB"),
        (3, U8K, "24kB"),
        (131072, U8K, "1GB"),
        (4096, UKB, "4MB"),
        (1536, UKB, "1536kB"),
        (1024, UMB, "1GB"),
        (300, US, "5min"),
        (90, US, "90s"),
        (3600, US, "1h"),
        (86400, US, "1d"),
        (200, UMS, "200ms"),
        (60000, UMS, "1min"),
        (0, U8K, "0"),
        (0, US, "0"),
        (42, NONE, "42"),
        (-1, NONE, "-1"),
    ],
)
def test_format_quantity_picks_the_largest_exact_unit(
    value: int, unit: Unit, expected: str
) -> None:
    assert format_quantity(value, unit) == expected


@pytest.mark.parametrize("unit", [U8K, UKB, UMB, US, UMS, UMIN, Unit.parse("B"), NONE])
def test_format_then_parse_round_trips(unit: Unit) -> None:
    values = [0, 1, 2, 3, 7, 8, 100, 1000, 1023, 1024, 1536, 4096, 16384, 60, 3600, 86400]
    values += [2**k for k in range(0, 31, 3)] + [10**k for k in range(7)]
    for value in values:
        text = format_quantity(value, unit)
        assert parse_quantity(text, unit) == value, (value, text)


def test_format_never_emits_bytes_but_stays_exact() -> None:
    # PostgreSQL before 11 rejects "B"; a byte-sized native unit stays a bare number.
    unit = Unit.parse("B")
    assert format_quantity(1000, unit) == "1000"
    assert format_quantity(2048, unit) == "2kB"


def test_special_values_are_formatted_bare() -> None:
    wal_buffers = Knob(
        name="wal_buffers",
        type="integer",
        default=-1,
        unit=U8K,
        min=8.0,
        max=32768.0,
        special=(-1,),
    )
    assert wal_buffers.format(-1) == "-1"  # not "-8kB": -1 means "auto"
    assert wal_buffers.format(16384) == "128MB"
    flush = Knob(name="f", type="integer", default=0, unit=U8K, min=1, max=256, special=(0,))
    assert flush.format(0) == "0"
    assert flush.format(256) == "2MB"
    jit_above_cost = Knob(
        name="jit_above_cost", type="real", default=1e5, min=1e3, max=1e7, special=(-1.0,)
    )
    assert jit_above_cost.format(-1.0) == "-1"
    assert jit_above_cost.format(-1) == "-1"


def test_knob_format_round_trips_through_validate() -> None:
    knob = _int_knob("8kB", 1, 131072)
    for value in (1, 2, 3, 127, 128, 1024, 16384, 65536, 131072):
        assert knob.validate(knob.format(value)) == value


def test_machine_local_is_plausible() -> None:
    local = Machine.local()
    assert local.memory_bytes > 0
    assert local.cpus >= 1
